"""A plugin's modules compiled to bytecode for its image, in an upload check worker.

The image's ``__pycache__`` spares each container's start the compile of the plugin's
modules (the image's file system is read-only to runs: nothing a run compiles is kept).
Compiling here, in the memory- and time-bounded check worker that already parses the same
sources, lets the build add the ``.pyc`` files beside the code in the one step that adds
the code, instead of a step that runs a container to compile them.

Nothing is run: ``compile`` turns source into a code object, and ``marshal`` writes it.
The files are checked-hash ``.pyc`` (PEP 552): the interpreter in the container uses one
only when its own magic number and cache tag match and the source's hash is the one it
holds, and compiles the source as before otherwise.
"""

from __future__ import annotations

import importlib.util
import marshal
import sys
import warnings
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["Bytecode", "compile_sources", "pyc_path"]

# PEP 552 flags: a hash-based .pyc (bit 0) whose hash the importer checks (bit 1).
_CHECKED_HASH = (0b11).to_bytes(4, "little")


@dataclass(frozen=True)
class Bytecode:
    """The ``.pyc`` files by path (relative to the plugin's folder) and the compiler's
    warnings, one ``path:line: Category: message`` line each, with the source line."""

    files: Mapping[str, bytes]
    warnings: tuple[str, ...]


def pyc_path(path: str) -> str:
    """Where the interpreter looks for the bytecode of the module at ``path``."""
    folder, _, name = path.rpartition("/")
    cached = f"__pycache__/{name.removesuffix('.py')}.{sys.implementation.cache_tag}.pyc"
    return f"{folder}/{cached}" if folder else cached


def compile_sources(files: Mapping[str, bytes]) -> Bytecode:
    """Each ``.py`` of ``files`` compiled; a file that does not compile is left out (the
    build's import check reports it, with its line, from the image)."""
    compiled: dict[str, bytes] = {}
    lines: list[str] = []
    for path in sorted(p for p in files if p.endswith(".py")):
        source = files[path]
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                code = compile(source, path, "exec", dont_inherit=True)
            except (SyntaxError, ValueError):
                continue
        compiled[pyc_path(path)] = _pyc(source, marshal.dumps(code))
        lines += [_warning_line(path, source, found) for found in caught]
    return Bytecode(compiled, tuple(lines))


def _pyc(source: bytes, code: bytes) -> bytes:
    return importlib.util.MAGIC_NUMBER + _CHECKED_HASH + importlib.util.source_hash(source) + code


def _warning_line(path: str, source: bytes, found: warnings.WarningMessage) -> str:
    """As the interpreter prints a warning: where, what, and the source line under it."""
    text = f"{path}:{found.lineno}: {found.category.__name__}: {found.message}"
    source_lines = source.decode("utf-8", "replace").splitlines()
    if 0 < found.lineno <= len(source_lines):
        text += "\n  " + source_lines[found.lineno - 1].strip()
    return text
