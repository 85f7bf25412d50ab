"""Record mode of the in-container runtime (``plugin-executor run`` without ``--api-url``):
the recorders stand in for ``self.kili`` / ``self.api`` and each call is a control line,
in order with the log records; a bad ``record`` object is refused like any envelope field."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from tests.unit.test_runtime import RUNTIME_COMMAND, make_envelope, runtime_env, write_plugin

PLUGIN = """
    from plugin_runtime import PluginCore

    class PluginHandler(PluginCore):
        def on_submit(self, label, asset_id):
            self.logger.info("before")
            others = self.kili.labels(project_id=self.project_id, asset_id=asset_id)
            self.logger.info("%d other(s), %d issue(s)", len(others), self.kili.count_issues())
            asset = self.api.get(f"assets/{asset_id}")
            self.api.patch(f"assets/{asset_id}", json={"jsonMetadata": {"seen": asset["n"]}})
            self.kili.send_back_to_queue(asset_ids=[asset_id])
            self.logger.info("after %s", "x" * 5000)
"""


def run_recorded(root: Path, record: Any) -> tuple[int, list[dict[str, Any]], str]:
    envelope = {**make_envelope(), "record": record}
    proc = subprocess.run(
        RUNTIME_COMMAND,
        input=json.dumps(envelope).encode(),
        capture_output=True,
        env=runtime_env(root),
        cwd=root,
        timeout=60,
        check=False,
    )
    lines = [json.loads(line) for line in proc.stdout.decode().splitlines()]
    return proc.returncode, lines, proc.stderr.decode()


def shown(lines: list[dict[str, Any]]) -> list[str]:
    """Log messages and recorded calls, in the order written."""
    return [
        line["msg"] if "msg" in line else f"CALL {line['call']}"
        for line in lines
        if "msg" in line or line.get("control") == "recorded_call"
    ]


def test_calls_are_recorded_in_order_and_answered(tmp_path: Path) -> None:
    root = write_plugin(tmp_path, PLUGIN)
    answers = {"kili": {"count_issues": 7}, "api": {"GET assets/asset-1": {"n": 3}}}
    code, lines, stderr = run_recorded(root, answers)
    assert code == 0, stderr
    messages = shown(lines)
    assert messages[:-1] == [
        "before",
        "CALL kili.labels(project_id='proj-1', asset_id='asset-1')",
        "CALL kili.count_issues()",
        "0 other(s), 7 issue(s)",  # labels: [] by default, count_issues: the answer
        "CALL api.get('assets/asset-1')",
        "CALL api.patch('assets/asset-1', json={'jsonMetadata': {'seen': 3}})",
        "CALL kili.send_back_to_queue(asset_ids=['asset-1'])",
    ]
    assert messages[-1] == "after " + "x" * 5000


def test_a_long_call_is_cut_saying_so(tmp_path: Path) -> None:
    root = write_plugin(
        tmp_path,
        """
        class PluginHandler:
            def on_submit(self, label, asset_id):
                self.kili.create_issues(text_array=["y" * 10000])
        """,
    )
    code, lines, stderr = run_recorded(root, {})
    assert code == 0, stderr
    (call,) = [line["call"] for line in lines if line.get("control") == "recorded_call"]
    assert call.startswith("kili.create_issues(text_array=['yyy")
    assert call.endswith("... (6035 more characters)")
    assert len(call) == 4000 + len("... (6035 more characters)")


def test_a_bad_record_object_is_an_invalid_envelope(tmp_path: Path) -> None:
    root = write_plugin(tmp_path, PLUGIN)
    for record, message in (
        ([], "invalid envelope: field record must be dict, not list"),
        ({"kili": []}, "invalid envelope: field record.kili must be dict, not list"),
        (
            {"api": {"assets": 1}},
            "invalid envelope: record.api keys are 'METHOD path' (e.g. 'GET assets/a1'), "
            "not 'assets'",
        ),
    ):
        code, lines, _ = run_recorded(root, record)
        assert code == 2
        assert [line["msg"] for line in lines if "msg" in line] == [message]
        assert not any(line.get("control") for line in lines)  # the handler never ran
