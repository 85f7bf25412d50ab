"""Record mode of ``plugin-executor run`` (the default without ``--api-url``).

The envelope gets a ``record`` object; the in-container runtime then gives the plugin the
``plugin_runtime.testing`` recorders as ``self.kili`` and ``self.api`` (answering from the
optional ``--answers`` file) and reports each call as a ``recorded_call`` control line,
which :class:`RecordedCalls` prints as it comes. The sandbox profile is a served run's:
no network, no gateway socket (docs/authoring.md says why this and not a gateway).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from executor.run.output import OutputLine
from executor.schemas.envelope import Envelope

__all__ = ["MAX_ANSWERS_BYTES", "LocalEnvelope", "RecordAnswers", "RecordedCalls", "read_answers"]

MAX_ANSWERS_BYTES = 1024 * 1024  # the answers travel in the envelope, on the container's stdin
RECORDED_CALL = "recorded_call"  # plugin_runtime.record.RECORDED_CALL
CALL = "CALL"  # how a recorded call is shown among the log lines
API_KEY = r"^[A-Z]+ \S+$"


class RecordAnswers(BaseModel):
    """The ``--answers`` file: ``{"kili": {"labels": [...]}, "api": {"GET assets/a1": {...}}}``."""

    model_config = ConfigDict(extra="forbid")

    kili: dict[str, Any] = Field(
        default_factory=dict, description="Kili method name → what it returns."
    )
    api: dict[str, Any] = Field(
        default_factory=dict, description="'METHOD path' (e.g. 'GET assets/a1') → the answer."
    )

    @field_validator("api")
    @classmethod
    def _api_keys(cls, value: dict[str, Any]) -> dict[str, Any]:
        for key in value:
            method, _, path = key.partition(" ")
            if not (method.isalpha() and method.isupper() and path and " " not in path):
                raise ValueError(f"key {key[:80]!r} is not 'METHOD path' (e.g. 'GET assets/a1')")
        return value


class LocalEnvelope(Envelope):
    """A served run's envelope plus ``record`` (the executor's server never sends one)."""

    record: RecordAnswers


class AnswersError(ValueError):
    """The answers file cannot be used; the message says why."""


def read_answers(path: Path | None) -> RecordAnswers:
    """The answers in ``path`` (none: every call gets the default answer)."""
    if path is None:
        return RecordAnswers()
    try:
        with path.open("rb") as file:
            raw = file.read(MAX_ANSWERS_BYTES + 1)
    except OSError as exc:
        raise AnswersError(f"cannot read {path}: {exc.strerror}") from None
    if len(raw) > MAX_ANSWERS_BYTES:
        raise AnswersError(f"{path} is larger than {MAX_ANSWERS_BYTES} bytes")
    try:
        return RecordAnswers.model_validate_json(raw)
    except ValidationError as exc:
        where = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'the file'}: {e['msg']}" for e in exc.errors()[:3]
        )
        raise AnswersError(f"{path} is not an answers file: {where}") from None


class RecordedCalls:
    """The collector's ``on_control``: each call the runtime reports becomes a ``CALL`` line
    in the place it came (after the log lines written before it), and is counted."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, control: dict[str, object]) -> list[OutputLine]:
        call = control.get("call")
        if control.get("control") != RECORDED_CALL or not isinstance(call, str):
            return []
        self.count += 1
        return [OutputLine(CALL, call, "record")]
