"""Record mode: ``self.kili`` and ``self.api`` are the :mod:`plugin_runtime.testing`
recorders, and each call is reported to the executor as it happens.

``plugin-executor run`` without ``--api-url`` puts a ``record`` object in the envelope (the
executor never does for a served run). The plugin then runs in the same sandbox as ever
(no network, no gateway socket) and nothing reaches a platform: a Kili method returns the
envelope's canned answer for its name (else ``[]`` for the SDK's list queries, ``0`` for its
counts, ``None`` for the rest), an API request the answer for ``"METHOD path"`` (else
``None``). Each call is one control line ``{"control": "recorded_call", "call": TEXT}``
where TEXT reads like the plugin's code: ``kili.create_issues(project_id='p1', ...)``,
``api.patch('assets/a1', json={...})``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from plugin_runtime.envelope import RecordAnswers
from plugin_runtime.testing import ApiCall, Call, RecordingApi, RecordingKili

__all__ = ["RECORDED_CALL", "RecordAnswers", "describe_api", "describe_kili", "recorders"]

RECORDED_CALL = "recorded_call"
# Room for one call's text in a protocol line (16 KiB): longer text is cut, saying so.
MAX_CALL_CHARS = 4000
# Kili SDK methods that return a list or a count: an answer a plugin can iterate or compare
# without a canned answer (the rest of the SDK returns None unless answered).
KILI_LIST_QUERIES = ("assets", "issues", "labels", "organizations", "project_users", "projects")
KILI_COUNTS = ("count_assets", "count_issues", "count_labels", "count_projects", "count_users")


def _cut(text: str) -> str:
    if len(text) <= MAX_CALL_CHARS:
        return text
    return f"{text[:MAX_CALL_CHARS]}... ({len(text) - MAX_CALL_CHARS} more characters)"


def _arguments(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> str:
    return ", ".join([*map(repr, args), *(f"{k}={v!r}" for k, v in kwargs.items())])


def describe_kili(call: Call) -> str:
    """``kili.NAME(args)``, as the plugin wrote the call."""
    return _cut(f"kili.{call.name}({_arguments(call.args, call.kwargs)})")


def describe_api(call: ApiCall) -> str:
    """``api.VERB('path', json=..., params=...)``, leaving out what was not given."""
    extra = {k: v for k, v in (("json", call.json), ("params", call.params)) if v is not None}
    return _cut(f"api.{call.method.lower()}({_arguments((call.path,), extra)})")


def _empty_list(*_args: Any, **_kwargs: Any) -> list[Any]:
    return []


def recorders(
    answers: RecordAnswers, report: Callable[[str], None]
) -> tuple[RecordingKili, RecordingApi]:
    """The ``self.kili`` and ``self.api`` of a record-mode run; ``report`` gets each call."""
    # A new list per call: a plugin appending to one answer must not change the next.
    defaults: dict[str, Any] = {name: _empty_list for name in KILI_LIST_QUERIES}
    defaults.update(dict.fromkeys(KILI_COUNTS, 0))
    kili = RecordingKili(
        returns={**defaults, **answers.kili},
        on_call=lambda call: report(describe_kili(call)),
    )
    api = RecordingApi(returns=answers.api, on_call=lambda call: report(describe_api(call)))
    return kili, api
