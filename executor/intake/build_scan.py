"""What a build reads of a stored version's source before it starts, in a check worker:
the imports its warning needs and the bytecode its image gets."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from executor.intake.bytecode import Bytecode, compile_sources
from executor.intake.imports import ImportScan, scan_imports

__all__ = ["BuildScan", "scan_for_build"]


@dataclass(frozen=True)
class BuildScan:
    """The source's imports (``executor.intake.imports``) and its bytecode."""

    imports: ImportScan
    bytecode: Bytecode


def scan_for_build(files: Mapping[str, bytes]) -> BuildScan:
    """Parse and compile every ``.py`` of ``files``."""
    return BuildScan(scan_imports(files), compile_sources(files))
