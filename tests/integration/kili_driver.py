"""Runs Kili SDK calls for test_kili_sdk, in the Kili SDK's own virtualenv (.venv-kili).

Reads ``{"endpoint", "api_key", "out", "calls": [[method, kwargs], ...]}`` on stdin, makes
each call on one ``Kili`` client in order, and writes one JSON line per call to ``out``:
``{"result": ...}`` or ``{"error": {"type": ..., "message": ...}}``. The SDK's own prints
and logs go to stdout/stderr, which the test also reads.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any


def main() -> None:
    job = json.load(sys.stdin)
    os.environ["KILI_SDK_SKIP_CHECKS"] = "1"  # no key check against Kili's cloud
    from kili.client import Kili  # type: ignore[import-not-found]

    kili = Kili(api_key=job["api_key"], api_endpoint=job["endpoint"])
    with open(job["out"], "w", encoding="utf-8") as out:
        for method, kwargs in job["calls"]:
            outcome: dict[str, Any]
            try:
                outcome = {"result": getattr(kili, method)(**kwargs)}
            except Exception as exc:  # the test asserts on the type and message
                outcome = {"error": {"type": type(exc).__name__, "message": str(exc)}}
            out.write(json.dumps(outcome, default=str) + "\n")
            out.flush()


if __name__ == "__main__":
    main()
