"""The runtime imports a plugin's own modules by their plain name too, and runs handlers a
plugin class inherits (the upload check derives them the same way: executor/intake/inheritance.py).
Run as a subprocess on the host Python, like tests/unit/test_runtime.py."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.unit.test_runtime import (
    FIXTURES,
    RUNTIME_DIR,
    make_envelope,
    run_runtime,
    write_plugin,
)


def test_inherited_handlers_from_plain_and_relative_imports_run(tmp_path: Path) -> None:
    shutil.copytree(FIXTURES / "inherited", tmp_path / "plugin_code")
    submit = run_runtime(tmp_path, make_envelope("onSubmit"))
    back = run_runtime(tmp_path, make_envelope("onSendBackToQueue"))

    assert submit.returncode == 0, submit.lines
    assert submit.msgs("logger", "INFO") == ["inherited on_submit for asset-1 from mixins"]
    assert back.returncode == 0, back.lines
    assert back.msgs("logger", "INFO") == ["inherited on_send_back_to_queue for asset-1"]


def test_a_plugin_module_never_shadows_the_standard_library(tmp_path: Path) -> None:
    source = """
        import json

        class PluginHandler:
            def on_submit(self, label, asset_id):
                print(json.dumps({"asset": asset_id}))
    """
    root = write_plugin(tmp_path, source, {"json.py": "raise ImportError('shadowed')\n"})
    run = run_runtime(root, make_envelope("onSubmit"))

    assert run.returncode == 0, run.lines
    assert run.msgs("stdout") == ['{"asset": "asset-1"}']


# What a cold start leaves until a handler needs it: the API's transport (urllib,
# http.client, email, ssl) and asyncio.
DEFERRED = ("plugin_runtime.transport", "http.client", "asyncio")
REPORT_DEFERRED = f"""
    import json, sys

    class PluginHandler:
        def on_submit(self, label, asset_id):
            print(json.dumps([m for m in {list(DEFERRED)!r} if m in sys.modules]))
"""


def test_a_cold_start_reaches_its_handler_without_the_api_transport_or_asyncio(
    tmp_path: Path,
) -> None:
    root = write_plugin(tmp_path, REPORT_DEFERRED)
    # A file as stdin: the envelope is there before the runtime looks, as in a cold start.
    envelope = tmp_path / "envelope.json"
    envelope.write_text(json.dumps(make_envelope("onSubmit")))
    run = run_runtime(root, envelope)

    assert run.returncode == 0, run.lines
    assert run.msgs("stdout") == ["[]"]


PRELOAD = """
import json, os, sys
read, write = os.pipe()
if sys.argv[1] == "envelope-waiting":
    os.write(write, b"{}")
sys.stdin = os.fdopen(read)
from plugin_runtime import runner
before = [m for m in DEFERRED if m in sys.modules]
runner._preload_if_early()
print(json.dumps([before, [m for m in DEFERRED if m in sys.modules]]))
"""


@pytest.mark.parametrize(
    ("stdin", "loaded"),
    [("empty", list(DEFERRED)), ("envelope-waiting", [])],
)
def test_a_container_started_ahead_of_its_event_imports_them_while_it_waits(
    stdin: str, loaded: list[str]
) -> None:
    source = f"DEFERRED = {DEFERRED!r}\n{PRELOAD}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["PYTHONPATH"] = str(RUNTIME_DIR)
    done = subprocess.run(
        [sys.executable, "-c", source, stdin], capture_output=True, env=env, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [[], loaded]
