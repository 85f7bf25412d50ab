"""Platform errors: each maps to an HTTP status and a JSON body ``{"code", "message"}``."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

__all__ = ["PlatformError", "install_error_handler"]


class PlatformError(Exception):
    """A refused request; ``message`` says what was wrong and what to do."""

    def __init__(self, status_code: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.code = code
        self.message = message


def not_found(what: str, ident: str) -> PlatformError:
    return PlatformError(404, "not_found", f"no {what} {ident!r} here: check the id")


def install_error_handler(app: FastAPI) -> None:
    @app.exception_handler(PlatformError)
    async def _handle(_request: Request, exc: PlatformError) -> JSONResponse:
        return JSONResponse({"code": exc.code, "message": exc.message}, exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        return JSONResponse({"code": "validation_error", "message": problems}, 422)
