"""Runs Kili SDK calls for test_kili_sdk, in the Kili SDK's own virtualenv (.venv-kili).

One process serves a whole test module (importing the SDK takes seconds): it reads one job
a line on stdin, ``{"endpoint", "api_key", "calls": [[method, kwargs], ...]}``, makes each
call in order on a new ``Kili`` client (as one user's script does), and answers one line
on stdout: ``{"outcomes": [...]}``, each ``{"result": ...}`` or ``{"error": {"type": ...,
"message": ...}}``. The SDK's own prints and logs go to stderr, which the test keeps.

The SDK waits 15 s before each look at a new plugin's build (``time.sleep(15)`` in
``kili.services.plugins.upload``): here that wait ends as soon as the executor's record of
the build says it ended, never later than the SDK's 15 s. The SDK's calls are unchanged.
"""

from __future__ import annotations

import contextvars
import json
import os
import sys
import time
from typing import Any

os.environ["KILI_SDK_SKIP_CHECKS"] = "1"  # no key check against Kili's cloud
from kili.client import Kili  # type: ignore[import-not-found]
from kili.services.plugins import upload  # type: ignore[import-not-found]

BUILD_ENDED = ("ACTIVE", "FAILED")  # the statuses the SDK's own loop stops on
LOOK_EVERY_S = 0.2
# The uploader whose build the SDK waits for, while it does.
_waiting: contextvars.ContextVar[Any] = contextvars.ContextVar("waiting")


class _BuildClock:
    """Stands in for ``time`` in the SDK's upload module, whose one use is the wait
    before each look at the build's status."""

    @staticmethod
    def sleep(seconds: float) -> None:
        uploader = _waiting.get(None)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if uploader is not None and uploader.get_plugin_runner_status() in BUILD_ENDED:
                return
            time.sleep(min(LOOK_EVERY_S, max(0.0, deadline - time.monotonic())))


def _patch_build_wait() -> None:
    """Fails loudly if the SDK no longer waits as this expects (a new release)."""
    uploader = upload.PluginUploader
    assert upload.time is time and hasattr(uploader, "get_plugin_runner_status"), upload
    checked = uploader._check_plugin_runner_status

    def check(self: Any, *args: Any, **kwargs: Any) -> Any:
        token = _waiting.set(self)
        try:
            return checked(self, *args, **kwargs)
        finally:
            _waiting.reset(token)

    uploader._check_plugin_runner_status = check
    upload.time = _BuildClock


def run(job: dict[str, Any]) -> list[dict[str, Any]]:
    kili = Kili(api_key=job["api_key"], api_endpoint=job["endpoint"])
    outcomes: list[dict[str, Any]] = []
    for method, kwargs in job["calls"]:
        try:
            outcomes.append({"result": getattr(kili, method)(**kwargs)})
        except Exception as exc:  # the test asserts on the type and message
            outcomes.append({"error": {"type": type(exc).__name__, "message": str(exc)}})
    return outcomes


def main() -> None:
    # Answers go to the real stdout; anything else written there (the SDK's prints,
    # a library's C code) goes to stderr.
    answers = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    _patch_build_wait()
    for line in sys.stdin:
        answers.write(json.dumps({"outcomes": run(json.loads(line))}, default=str) + "\n")
        answers.flush()


if __name__ == "__main__":
    main()
