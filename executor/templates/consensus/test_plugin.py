"""Unit tests of the consensus check, in-process: `pytest` in this folder (see
docs/authoring.md). `plugin-executor run . --event events/onSubmit.json` runs the same code
in the sandbox."""

from pathlib import Path
from typing import Any

from plugin_runtime.testing import Call, PluginHarness, RecordingKili

HARNESS = PluginHarness(Path(__file__).parent)


def label(label_id: str, email: str, category: str) -> dict[str, Any]:
    return {
        "id": label_id,
        "author": {"email": email},
        "jsonResponse": {"CLASSIFICATION_JOB": {"categories": [{"name": category}]}},
    }


def test_an_agreeing_label_leaves_the_asset_alone() -> None:
    others = [label("label-001", "alice@example.com", "CAT"), label("l2", "bob@example.com", "CAT")]
    kili = RecordingKili(returns={"labels": others})
    run = HARNESS.run_event("events/onSubmit.json", kili=kili)
    assert [call.name for call in kili.calls] == ["labels"]
    assert kili.calls[0].kwargs["asset_id"] == "asset-001"
    assert run.messages() == ["asset asset-001: 1 other label(s) agree on ['CAT']"]


def test_a_disagreeing_label_sends_the_asset_back_to_queue() -> None:
    kili = RecordingKili(returns={"labels": [label("l2", "bob@example.com", "DOG")]})
    run = HARNESS.run_event("events/onSubmit.json", kili=kili)
    assert kili.calls[-1] == Call("send_back_to_queue", (), {"asset_ids": ["asset-001"]})
    assert run.messages("WARNING") == [
        "asset asset-001: bob@example.com disagree with ['CAT']: sent back to queue"
    ]
