"""Tables and coloured log lines for the terminal (rich).

Text a plugin (or a package its build installs) wrote reaches the terminal only through
:func:`terminal_text`: control characters are shown as escapes, so a plugin cannot move the
cursor, erase or recolour lines, or paint a line that looks like the executor's own.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

__all__ = [
    "LEVEL_STYLES",
    "console",
    "print_json",
    "print_log_record",
    "print_table",
    "terminal_text",
]

console = Console()
err_console = Console(stderr=True)
LEVEL_STYLES = {
    "DEBUG": "dim",
    "INFO": "",
    "WARNING": "yellow",
    "ERROR": "red",
    "CRITICAL": "bold red",
    "SYSTEM": "bold magenta",
}


# C0 controls but tab and newline (ESC, CR, BEL, backspace, ...), DEL, C1 controls, the line
# and paragraph separators, and the bidirectional-text controls that reorder what is shown.
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]")


def terminal_text(text: str, indent: int = 0) -> str:
    """``text`` safe to print: each control character shown as its escape (``\\x1b``,
    ``\\r``, ``\\u202e``), tabs kept, and, with ``indent``, every line after the first
    indented by that many spaces so it cannot pass for a line of its own."""
    safe = _UNSAFE.sub(_escape, text)
    return safe.replace("\n", "\n" + " " * indent) if indent else safe


def _escape(match: re.Match[str]) -> str:
    char = match.group(0)
    if char == "\r":
        return "\\r"
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def print_json(data: Any) -> None:
    console.print_json(json.dumps(data))


def print_table(title: str, columns: list[str], rows: Iterable[Iterable[Any]]) -> None:
    table = Table(title=title)
    for column in columns:
        table.add_column(column)
    for row in rows:
        # Text, not str: a cell is data, never rich markup.
        table.add_row(*(Text(terminal_text("" if cell is None else str(cell))) for cell in row))
    console.print(table)


def print_log_record(record: dict[str, Any]) -> None:
    level = str(record["log_type"])
    line = Text(f"{record['created_at'][:23]} ", style="dim")
    line.append(f"{level:<8} ", style=LEVEL_STYLES.get(level, ""))
    line.append(
        # Later lines start under the first one's content, never at column 0.
        terminal_text(str(record["content"]), indent=len(line.plain)),
        style=LEVEL_STYLES.get(level, "") if level != "INFO" else "",
    )
    console.print(line, highlight=False, soft_wrap=True)
