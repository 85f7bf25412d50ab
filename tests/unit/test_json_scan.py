"""The raw-body scan of events (no server): depth and Unicode, each refusal naming its path."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from executor.errors import EventTooDeep, InvalidUnicode
from executor.intake.json_scan import check_json_body, plainly_fine
from executor.settings import Settings


def nested(levels: int, inner: bytes = b"{}") -> bytes:
    """An event body ``levels`` deep: the body is level 1, its label level 2."""
    opened = levels - 2
    return b'{"type": "t", "label": ' + b'{"a": ' * opened + inner + b"}" * opened + b"}"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (nested(5), "label.a.a.a"),
        (b'{"label": {"boxes": [1, {"k": "[{"}, [[[[]]]]]}}', "label.boxes.2.0"),
        (b'{"label": {"a": "}}}}", "b": {"c": [[[[]]]]}}}', "label.b.c.0"),
        (b'[[[[["x"]]]]]', "0.0.0.0"),
    ],
)
def test_the_first_level_too_deep_is_refused_with_its_path(body: bytes, field: str) -> None:
    with pytest.raises(EventTooDeep) as refused:
        check_json_body(body, 4)
    assert refused.value.field == field
    assert refused.value.maximum == 4
    assert refused.value.message == (
        f"{field}: objects and arrays nest deeper than 4 levels here (the body is level 1): "
        "send a flatter event"
    )


def test_brackets_inside_strings_and_exactly_the_limit_pass() -> None:
    check_json_body(nested(4), 4)
    check_json_body(b'{"label": {"text": "[[[[[[{{{{{{\\"[[[["}}', 4)


def test_a_body_deeper_than_the_interpreter_could_parse_is_refused_without_parsing() -> None:
    with pytest.raises(EventTooDeep) as refused:
        check_json_body(nested(200_000), 100)
    assert refused.value.field == "label" + ".a" * 99


@pytest.mark.parametrize(
    ("body", "field", "problem"),
    [
        (
            b'{"label": {"jsonResponse": {"JOB": {"text": "broken \\udcff emoji"}}}}',
            "label.jsonResponse.JOB.text",
            "the string holds \\udcff, a lone surrogate (not Unicode text)",
        ),
        (
            b'{"label": {"ok": "\\ud83d\\ude00", "\\ud83dx": 1}}',
            "label.\\ud83dx",
            "the key holds \\ud83d, a lone surrogate (not Unicode text)",
        ),
        (
            b'{"label": {"boxes": ["fine", "caf\xe9"]}}',
            "label.boxes.1",
            "the string holds byte 0xe9, which is not UTF-8",
        ),
        (b'{"asset_id": "\\ude00\\ud83d"}', "asset_id", "the string holds \\ude00"),
        (b'"\\udfff"', "", "the string holds \\udfff"),
    ],
)
def test_text_that_is_not_unicode_is_refused_with_its_path(
    body: bytes, field: str, problem: str
) -> None:
    with pytest.raises(InvalidUnicode) as refused:
        check_json_body(body, 100)
    assert refused.value.field == field
    assert refused.value.message.startswith(f"{field or 'the body'}: {problem}")
    json.dumps(refused.value.to_dict()).encode()  # the error itself can be sent


@pytest.mark.parametrize(
    "body",
    [
        b'{"label": {"emoji": "\\ud83d\\ude00", "raw": "\xf0\x9f\x98\x80", "nul": "\\u0000"}}',
        b'{"label": {"escaped backslash": "\\\\udcff"}}',  # the text \udcff, not an escape
        b'{"label": {"bad escape": "\\udc"}}',  # the parser's to refuse, with its position
    ],
)
def test_valid_unicode_and_what_only_looks_like_a_surrogate_pass(body: bytes) -> None:
    check_json_body(body, 100)


def test_the_depth_limit_stays_below_what_the_envelope_serializer_can_write() -> None:
    assert Settings(max_event_depth=200).api.max_event_depth == 200
    with pytest.raises(ValidationError, match="max_event_depth"):
        Settings(max_event_depth=201)


def test_only_a_body_the_cheap_checks_cannot_clear_is_walked() -> None:
    assert plainly_fine(b'{"label": {"a": ["b", {"c": "\\u00e9"}]}}', 100)
    assert not plainly_fine(b"[" * 101 + b"]" * 101, 100)
    assert not plainly_fine(b'{"label": "\\udcff"}', 100)
    assert not plainly_fine(b'{"label": "caf\xe9"}', 100)
