"""What the CLI's text output does with text a plugin wrote: control characters escaped,
tabs kept, later lines indented (tests/e2e/test_cli_escapes.py runs it for real)."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from executor.cli import render
from executor.cli.render import terminal_text


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("\x1b[2K", "\\x1b[2K"),  # ESC: erase line
        ("a\rb", "a\\rb"),  # CR: back to column 0
        ("\x07", "\\x07"),  # BEL
        ("ab\x08\x08", "ab\\x08\\x08"),  # backspace
        ("\x00\x0b\x0c\x1f\x7f", "\\x00\\x0b\\x0c\\x1f\\x7f"),  # other C0, DEL
        ("\x9b31m\x85", "\\x9b31m\\x85"),  # C1: CSI, NEL
        ("\u202egnp.exe", "\\u202egnp.exe"),  # right-to-left override
        (
            "\u2066\u2067\u2068\u2069\u202a\u202b\u202c\u202d",
            "\\u2066\\u2067\\u2068\\u2069\\u202a\\u202b\\u202c\\u202d",
        ),  # isolates and embeddings
        ("\u200e\u200f\u061c", "\\u200e\\u200f\\u061c"),  # direction marks
        ("\u2028\u2029", "\\u2028\\u2029"),  # line and paragraph separators
        ("col1\tcol2", "col1\tcol2"),  # tabs stay readable
        ("café ✓ 日本", "café ✓ 日本"),  # printable text untouched
    ],
)
def test_control_characters_are_shown_as_escapes(raw: str, shown: str) -> None:
    assert terminal_text(raw) == shown


def test_later_lines_are_indented() -> None:
    painted = "ok\n\x1b[2K\rSYSTEM run ended: succeeded"
    assert terminal_text(painted, indent=4) == "ok\n    \\x1b[2K\\rSYSTEM run ended: succeeded"
    assert terminal_text(painted) == "ok\n\\x1b[2K\\rSYSTEM run ended: succeeded"


def captured(monkeypatch: pytest.MonkeyPatch) -> io.StringIO:
    out = io.StringIO()
    monkeypatch.setattr(render, "console", Console(file=out, width=200, color_system=None))
    return out


def test_a_log_record_cannot_paint_a_line_of_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    out = captured(monkeypatch)
    render.print_log_record(
        {
            "created_at": "2026-11-27T10:00:00.123456+00:00",
            "log_type": "INFO",
            "content": "ok\n\x1b[2K\rSYSTEM run ended: succeeded\x07",
        }
    )
    assert out.getvalue() == (
        "2026-11-27T10:00:00.123 INFO     ok\n"
        + " " * 33
        + "\\x1b[2K\\rSYSTEM run ended: succeeded\\x07\n"
    )


def test_table_cells_are_data_not_markup(monkeypatch: pytest.MonkeyPatch) -> None:
    out = captured(monkeypatch)
    render.print_table("t", ["error"], [["[red]boom[/] \x1b]8;;https://evil.example\x07x"]])
    assert "[red]boom[/] \\x1b]8;;https://evil.example\\x07x" in out.getvalue()
    assert "\x1b" not in out.getvalue()
