"""The runtime imports a plugin's own modules by their plain name too, and runs handlers a
plugin class inherits (the upload check derives them the same way: executor/intake/inheritance.py).
Run as a subprocess on the host Python, like tests/unit/test_runtime.py."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.unit.test_runtime import FIXTURES, make_envelope, run_runtime, write_plugin


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
