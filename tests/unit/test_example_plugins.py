"""The pure logic of the example plugins (examples/qa_bot, consensus, parallel_labeling)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from examples.consensus import boxes, labels
from examples.parallel_labeling import combine
from examples.qa_bot import rules
from executor.intake.upload import pack_directory, read_upload


def invoice(iban: str | None, currency: str | None) -> dict[str, Any]:
    response: dict[str, Any] = {}
    if iban is not None:
        response["IBAN"] = {"text": iban}
    if currency is not None:
        response["CURRENCY"] = {"categories": [{"name": currency}]}
    return response


class TestQaRules:
    def test_valid_invoice_passes_every_rule(self) -> None:
        results = rules.check_invoice(invoice("FR76 3000 6000 0112", "EUR"))
        assert [(r.rule, r.passed) for r in results] == [("iban_fr", True), ("currency", True)]
        assert rules.accuracy(results) == 1.0

    def test_iban_is_normalised(self) -> None:
        assert rules.check_iban(invoice(" fr76 3000", "USD")).passed

    def test_both_rules_broken(self) -> None:
        results = rules.check_invoice(invoice("DE89 3704 0044", "GBP"))
        assert [r.message for r in results if not r.passed] == [
            "IBAN DE89... does not start with FR",
            "currency GBP is not EUR or USD",
        ]
        assert rules.accuracy(results) == 0.0

    def test_one_rule_broken_gives_half(self) -> None:
        results = rules.check_invoice(invoice("FR76", "CHF"))
        assert rules.accuracy(results) == 0.5

    def test_missing_answers_break_the_rules(self) -> None:
        results = rules.check_invoice({})
        assert [r.message for r in results] == [
            "IBAN is missing: transcribe the payment IBAN",
            "currency missing is not EUR or USD",
        ]

    def test_accuracy_of_no_rules(self) -> None:
        assert rules.accuracy([]) == 1.0


def rect(category: str, x0: float, y0: float, x1: float, y1: float) -> dict[str, Any]:
    return boxes.to_annotations([boxes.Box(category, x0, y0, x1, y1)])[0]


class TestConsensusBoxes:
    def test_iou(self) -> None:
        a = boxes.Box("A", 0, 0, 0.2, 0.2)
        assert boxes.iou(a, a) == pytest.approx(1.0)
        assert boxes.iou(a, boxes.Box("A", 0.1, 0, 0.3, 0.2)) == pytest.approx(1 / 3)
        assert boxes.iou(a, boxes.Box("A", 0.5, 0.5, 0.6, 0.6)) == 0.0
        assert boxes.iou(a, boxes.Box("A", 0.2, 0, 0.4, 0.2)) == 0.0  # touching edges

    def test_boxes_of_reads_kili_annotations(self) -> None:
        response = {"JOB": {"annotations": [rect("CAR", 0.1, 0.2, 0.3, 0.4)]}}
        assert boxes.boxes_of(response, "JOB") == [boxes.Box("CAR", 0.1, 0.2, 0.3, 0.4)]
        assert boxes.boxes_of(response, "OTHER") == []

    def test_majority_keeps_boxes_and_votes_categories(self) -> None:
        merged = boxes.merge(
            {
                "a": [
                    boxes.Box("CAR", 0.10, 0.10, 0.30, 0.30),
                    boxes.Box("CAR", 0.7, 0.7, 0.8, 0.8),
                ],
                "b": [boxes.Box("CAR", 0.12, 0.10, 0.32, 0.30)],
                "c": [boxes.Box("TRUCK", 0.11, 0.10, 0.31, 0.30)],
            }
        )
        # The lone box of "a" at (0.7, 0.7) has no majority; the three overlapping ones do.
        assert len(merged) == 1
        box = merged[0]
        assert box.category == "CAR"
        assert (box.x0, box.y0, box.x1, box.y1) == pytest.approx((0.11, 0.10, 0.31, 0.30))

    def test_two_labelers_need_both_and_ties_go_alphabetical(self) -> None:
        merged = boxes.merge(
            {
                "a": [boxes.Box("TRUCK", 0, 0, 0.2, 0.2), boxes.Box("CAR", 0.5, 0.5, 0.9, 0.9)],
                "b": [boxes.Box("CAR", 0, 0, 0.2, 0.2)],
            }
        )
        assert merged == [boxes.Box("CAR", 0, 0, 0.2, 0.2)]

    def test_one_labeler_never_fills_a_group_twice(self) -> None:
        same = boxes.Box("CAR", 0, 0, 0.2, 0.2)
        merged = boxes.merge({"a": [same, same], "b": [same]})
        assert merged == [same]

    def test_low_overlap_is_not_matched(self) -> None:
        merged = boxes.merge(
            {"a": [boxes.Box("CAR", 0, 0, 0.2, 0.2)], "b": [boxes.Box("CAR", 0.15, 0, 0.35, 0.2)]}
        )
        assert merged == []

    def test_detection_jobs(self) -> None:
        responses: list[dict[str, Any]] = [
            {"J1": {"annotations": []}, "C": {"categories": []}},
            {"J0": {"annotations": []}},
        ]
        assert boxes.detection_jobs(responses) == ["J0", "J1"]


def label(
    label_id: str, author: str, response: dict[str, Any], kind: str = "DEFAULT"
) -> dict[str, Any]:
    return {
        "id": label_id,
        "author": {"email": author},
        "labelType": kind,
        "jsonResponse": response,
    }


class TestLabelSelection:
    def test_latest_label_of_each_assignee(self) -> None:
        found = labels.latest_by_assignee(
            [
                label("1", "a", {}),
                label("2", "b", {}),
                label("3", "a", {}),
                label("4", "bot", {}),
                label("5", "b", {}, "REVIEW"),
            ],
            ["a", "b"],
        )
        assert {k: v["id"] for k, v in found.items()} == {"a": "3", "b": "2"}
        assert labels.missing(found, ["a", "b", "c"]) == ["c"]


class TestParallelCombine:
    def test_jobs_of_both_groups_are_combined(self) -> None:
        result = combine.combine(
            {
                "a": label("1", "a", {"JOB_A": {"text": "x"}}),
                "b": label("2", "b", {"JOB_B": {"categories": [{"name": "Y"}]}}),
            },
            ["a", "b"],
        )
        assert result.json_response == {
            "JOB_A": {"text": "x"},
            "JOB_B": {"categories": [{"name": "Y"}]},
        }
        assert result.sources == {"JOB_A": "a", "JOB_B": "b"}
        assert result.conflicts == {}

    def test_conflicting_answers_keep_the_first_labeler(self) -> None:
        result = combine.combine(
            {
                "a": label("1", "a", {"JOB_A": {"text": "x"}}),
                "b": label("2", "b", {"JOB_A": {"text": "other"}, "JOB_B": {"text": "y"}}),
                "c": label("3", "c", {"JOB_A": {"text": "x"}}),
            },
            ["a", "b", "c"],
        )
        assert result.json_response == {"JOB_A": {"text": "x"}, "JOB_B": {"text": "y"}}
        assert result.conflicts == {"JOB_A": ["a", "b", "c"]}

    def test_same_answers_are_no_conflict(self) -> None:
        same = {"JOB_A": {"text": "x"}}
        result = combine.combine(
            {"a": label("1", "a", same), "b": label("2", "b", same)}, ["a", "b"]
        )
        assert result.conflicts == {}
        assert result.sources == {"JOB_A": "a"}


@pytest.mark.parametrize(
    ("name", "files"),
    [
        ("qa_bot", {"main.py", "rules.py", "README.md"}),
        ("consensus", {"main.py", "boxes.py", "labels.py", "README.md"}),
        ("parallel_labeling", {"main.py", "combine.py", "labels.py", "README.md"}),
    ],
)
def test_example_plugins_pass_the_upload_checks(name: str, files: set[str]) -> None:
    folder = Path(__file__).resolve().parents[2] / "examples" / name
    source = read_upload(f"{name}.tar.gz", pack_directory(folder))
    assert source.handlers == ("onSubmit",)
    assert set(source.files) == files
