"""The build's static warning: a module-level import nothing in the image provides.

Read by AST only. An import is resolved when it names the standard library, one of the
plugin's own modules or packages, a top-level module of the runtime flavor (listed in the
flavor image's label at its build), or a top-level module of a distribution that the
requirements installed. The last are read in the built image (``installed_modules``: each
installed distribution's ``top_level.txt`` or ``RECORD``, as
``importlib.metadata.packages_distributions()`` reads them), so ``python-dateutil``
resolves ``dateutil`` and ``PyYAML`` resolves ``yaml`` because that is what they installed,
never by a table of names. Only a warning: a guarded ``try: import x`` is fine.
"""

from __future__ import annotations

import ast
import re
import sys
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass

from executor.intake import pysource

__all__ = [
    "RUNTIME_MODULES",
    "FoundImport",
    "ImportScan",
    "installed_modules",
    "scan_imports",
    "unresolved",
    "unresolved_imports",
]

RUNTIME_MODULES = frozenset({"plugin_runtime"})  # in every image, on PYTHONPATH
# The built image's list of installed modules is written by code the requirements may
# influence: read as untrusted, bounded, each module name matched whole.
MAX_MODULES_BYTES = 1024 * 1024
MAX_MODULES = 50_000
_MODULE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,254}")
_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)


@dataclass(frozen=True)
class FoundImport:
    """One module-level absolute import: where, and the top-level module it names."""

    path: str
    module: str
    line: int


@dataclass(frozen=True)
class ImportScan:
    """What the warning needs of a plugin's sources: its paths and their imports."""

    paths: tuple[str, ...]
    imports: tuple[FoundImport, ...]  # by path, then line


def scan_imports(files: Mapping[str, bytes]) -> ImportScan:
    """Parse every ``.py`` of ``files`` (the server does it in a check worker:
    ``executor.intake.checker``) for its module-level imports."""
    found = [
        FoundImport(path, module, line)
        for path in sorted(p for p in files if p.endswith(".py"))
        for module, line in _module_level_imports(pysource.parse_python(path, files[path]))
    ]
    return ImportScan(tuple(files), tuple(found))


def unresolved(scan: ImportScan, provided: Collection[str], flavor: str) -> list[str]:
    """One WARNING line per module-level import of a module nothing provides; ``provided``
    are the top-level modules of the flavor and of what the requirements installed."""
    local = {path.split("/", 1)[0].removesuffix(".py") for path in scan.paths}
    known = set(sys.stdlib_module_names) | local | RUNTIME_MODULES | set(provided)
    return [
        f"WARNING: {found.path}, line {found.line}: 'import {found.module}': {found.module} is "
        f"not in the standard library, the plugin, the '{flavor}' runtime flavor or the "
        "packages requirements.txt installed; add its package to requirements.txt or choose "
        "a flavor that has it"
        for found in scan.imports
        if found.module not in known
    ]


def installed_modules(listing: str) -> dict[str, tuple[str, ...]]:
    """The image's installed top-level modules and the distributions that provide each,
    from its ``module distribution...`` lines (``executor.build.context.MODULES_CODE``).
    Bounded: at most ``MAX_MODULES_BYTES`` and ``MAX_MODULES`` lines are read; a line whose
    first word is not a module name is skipped."""
    found: dict[str, tuple[str, ...]] = {}
    for line in listing[:MAX_MODULES_BYTES].splitlines()[:MAX_MODULES]:
        module, *distributions = line.split()[:64] or [""]
        if _MODULE_NAME.fullmatch(module):
            found[module] = tuple(distributions)
    return found


def unresolved_imports(
    files: Mapping[str, bytes], provided: Collection[str], flavor: str
) -> list[str]:
    """``unresolved`` of ``files`` parsed in this process (for trusted sources and tests)."""
    return unresolved(scan_imports(files), provided, flavor)


def _module_level_imports(tree: ast.Module) -> Iterator[tuple[str, int]]:
    """(top-level module name, line) of each absolute import run at import time."""
    for node in _outside_scopes(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name.split(".", 1)[0], node.lineno
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module.split(".", 1)[0], node.lineno


def _outside_scopes(node: ast.AST) -> Iterator[ast.AST]:
    for child in ast.iter_child_nodes(node):
        if not isinstance(child, _SCOPES):
            yield child
            yield from _outside_scopes(child)
