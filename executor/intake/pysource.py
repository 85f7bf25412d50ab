"""Static checks of a plugin's Python sources, by AST only.

User code is parsed with ``ast.parse`` and never imported or run on the host (a build
compiles it to bytecode in a check worker: ``executor.intake.bytecode``). The handler
types a plugin serves are the handler methods of its top-level ``class PluginHandler`` in
``main.py``, its base classes from the plugin's own modules included
(``executor.intake.inheritance``).
"""

from __future__ import annotations

import ast
from collections.abc import Mapping

from executor.errors import PluginRejected
from executor.intake.inheritance import ClassRef, PluginModules

__all__ = ["HANDLER_WIRE_NAMES", "decode_text", "find_handlers", "parse_python"]

# Method name on PluginHandler -> event type on the wire (docs/architecture.md: the plugin
# contract).
HANDLER_WIRE_NAMES: dict[str, str] = {
    "on_submit": "onSubmit",
    "on_review": "onReview",
    "on_custom_interface_click": "onCustomInterfaceClick",
    "on_send_back_to_queue": "onSendBackToQueue",
    "on_event": "onEvent",
}
HANDLER_CLASS = "PluginHandler"
MAIN_MODULE = "main.py"


def find_handlers(files: Mapping[str, bytes]) -> tuple[str, ...]:
    """Check every ``.py`` in ``files`` (main.py first) and return the handlers' wire names.

    ``files`` must contain ``main.py``. The tuple is sorted, e.g. ``("onReview", "onSubmit")``.
    Raises ``PluginRejected`` with the file and line of the first problem.
    """
    sources = sorted((path for path in files if path.endswith(".py")), key=_main_first)
    trees = {path: parse_python(path, files[path]) for path in sources}
    return _handlers(trees)


def decode_text(path: str, content: bytes) -> str:
    """``content`` as UTF-8 text (a leading BOM dropped), or PluginRejected at the bad line."""
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = content.count(b"\n", 0, exc.start) + 1
        raise PluginRejected(
            f"{path}, line {line}: the file is not UTF-8 text. Save it as UTF-8 and upload again.",
            file=path,
            line=line,
        ) from exc
    return text.removeprefix("\ufeff")


def parse_python(path: str, content: bytes) -> ast.Module:
    """The AST of one source file, or PluginRejected naming the file and line."""
    text = decode_text(path, content)
    try:
        return ast.parse(text, filename=path)
    except SyntaxError as exc:
        message = (exc.msg or "invalid syntax").rstrip()
        if not message.endswith((".", "?", "!")):
            message += "."
        where = f"{path}, line {exc.lineno}" if exc.lineno else path
        raise PluginRejected(
            f"{where}: {message} Fix the syntax error and upload again.",
            file=path,
            line=exc.lineno or None,
        ) from exc
    except (MemoryError, RecursionError) as exc:  # the parser's own nesting limits
        raise PluginRejected(
            f"{path}: the code is nested too deeply to parse. Simplify it and upload again.",
            file=path,
        ) from exc


def _main_first(path: str) -> tuple[bool, str]:
    return (path != MAIN_MODULE, path)


def _handlers(trees: Mapping[str, ast.Module]) -> tuple[str, ...]:
    classes = [
        node
        for node in trees[MAIN_MODULE].body
        if isinstance(node, ast.ClassDef) and node.name == HANDLER_CLASS
    ]
    if not classes:
        raise PluginRejected(
            f"{MAIN_MODULE} has no top-level 'class {HANDLER_CLASS}': define it, for example "
            f"'class {HANDLER_CLASS}(PluginCore):' with an on_submit method, and upload again.",
            file=MAIN_MODULE,
        )
    cls = classes[-1]  # as at run time, the last definition wins
    methods = PluginModules(trees).methods(ClassRef(("main",), cls))
    wire_names = sorted(HANDLER_WIRE_NAMES[n] for n in methods.names & HANDLER_WIRE_NAMES.keys())
    if not wire_names:
        raise PluginRejected(
            f"{MAIN_MODULE}, line {cls.lineno}: class {HANDLER_CLASS} defines none of the "
            "handlers on_submit, on_review, on_custom_interface_click, on_send_back_to_queue "
            f"or on_event{_bases_note(cls, methods.foreign_bases)}. Add at least one of them as "
            "a method and upload again.",
            file=MAIN_MODULE,
            line=cls.lineno,
        )
    return tuple(wire_names)


def _bases_note(cls: ast.ClassDef, foreign: tuple[str, ...]) -> str:
    if not cls.bases:
        return ""
    note = ", nor do its base classes from the plugin's own modules"
    if foreign:
        note += f" (bases from elsewhere are not read: {', '.join(foreign)})"
    return note
