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
from rich.measure import Measurement
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


def print_table(
    title: str,
    columns: list[str],
    rows: Iterable[Iterable[Any]],
    *,
    keep: tuple[str, ...] = (),
    wide: bool = False,
) -> None:
    """A table; the ``keep`` columns (ids a later command needs) are never cut.

    With ``keep``, a table wider than the terminal drops its other columns from the right
    until it fits, and says which on stderr; ``wide`` shows every column whole instead,
    in lines as long as they need.
    """
    cells = [[Text(terminal_text("" if c is None else str(c))) for c in row] for row in rows]
    shown = list(range(len(columns)))
    out = console
    if keep:
        if wide:
            needed = _width(_table(title, columns, cells, shown, keep))
            out = Console(width=max(needed, console.width), file=console.file)
        else:
            hidden = _fit(title, columns, cells, shown, keep)
            if hidden:
                err_console.print(
                    f"(hidden at {console.width} columns: {', '.join(hidden)}; --wide shows "
                    "every column)",
                    markup=False,
                    highlight=False,
                    soft_wrap=True,
                )
    out.print(_table(title, columns, cells, shown, keep))


def _table(
    title: str, columns: list[str], cells: list[list[Text]], shown: list[int], keep: tuple[str, ...]
) -> Table:
    table = Table(title=title)
    for index in shown:
        if columns[index] in keep:  # as wide as its longest value: rich never cuts it
            longest = max([len(columns[index]), *(row[index].cell_len for row in cells)])
            table.add_column(columns[index], no_wrap=True, min_width=longest)
        else:
            table.add_column(columns[index])
    for row in cells:
        # Text, not str: a cell is data, never rich markup.
        table.add_row(*(row[index] for index in shown))
    return table


def _width(table: Table) -> int:
    return Measurement.get(console, console.options.update(width=1 << 20), table).maximum


def _fit(
    title: str, columns: list[str], cells: list[list[Text]], shown: list[int], keep: tuple[str, ...]
) -> list[str]:
    """Drop columns not kept from the right of ``shown`` until the table fits the
    terminal; the names of those dropped, in the table's order."""
    hidden: list[str] = []
    droppable = [i for i in shown if columns[i] not in keep]
    while droppable and _width(_table(title, columns, cells, shown, keep)) > console.width:
        index = droppable.pop()
        shown.remove(index)
        hidden.insert(0, columns[index])
    return hidden


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
