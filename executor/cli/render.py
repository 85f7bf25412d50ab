"""Tables and coloured log lines for the terminal (rich)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

__all__ = ["LEVEL_STYLES", "console", "print_json", "print_log_record", "print_table"]

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


def print_json(data: Any) -> None:
    console.print_json(json.dumps(data))


def print_table(title: str, columns: list[str], rows: Iterable[Iterable[Any]]) -> None:
    table = Table(title=title)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*("" if cell is None else str(cell) for cell in row))
    console.print(table)


def print_log_record(record: dict[str, Any]) -> None:
    level = str(record["log_type"])
    line = Text(f"{record['created_at'][:23]} ", style="dim")
    line.append(f"{level:<8} ", style=LEVEL_STYLES.get(level, ""))
    line.append(
        str(record["content"]), style=LEVEL_STYLES.get(level, "") if level != "INFO" else ""
    )
    console.print(line, highlight=False, soft_wrap=True)
