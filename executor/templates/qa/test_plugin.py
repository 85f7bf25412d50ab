"""Unit tests of the QA rule, in-process: `pytest` in this folder (see docs/authoring.md).

`plugin-executor run . --event events/onSubmit.json` runs the same code in the sandbox.
"""

from pathlib import Path

from plugin_runtime.testing import Call, PluginHarness, RecordingKili

HARNESS = PluginHarness(Path(__file__).parent)


def test_a_label_with_an_allowed_currency_is_accepted_without_issue() -> None:
    run = HARNESS.run_event("events/onSubmit.json")
    assert run.messages() == ["asset asset-001 ACCEPTED"]
    assert run.kili.calls == []


def test_a_label_with_another_currency_gets_an_issue() -> None:
    kili = RecordingKili(returns={"create_issues": [{"id": "issue-1"}]})
    run = HARNESS.run_event("events/onSubmit_wrong_currency.json", kili=kili)
    problem = "CURRENCY is 'GBP': expected one of EUR, USD"
    assert kili.calls == [
        Call(
            "create_issues",
            (),
            {
                "project_id": "local-project",
                "label_id_array": ["label-003"],
                "text_array": [problem],
            },
        )
    ]
    assert run.messages("WARNING") == [f"asset asset-003: {problem}"]
