"""What a build reads back from its built image and proves of it: the ``pip freeze`` and the
installed modules (read once per set of requirement layers), the import warnings (imports
neither the flavor nor the requirements provide) and the import check
(``executor.sandbox.import_check``: ``main.py`` loads).

The source scan and the import check are given to the builder by whoever wires it (the
scan, which also compiles the plugin's bytecode, runs in an upload check worker; the check
in a sandboxed container); without them a build makes no import warnings, no bytecode (each
container compiles the code at its start) and no import check.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import NamedTuple

from executor.build.context import FREEZE_PATH, MODULES_PATH, BuildContext
from executor.build.flavors import flavor_modules
from executor.build.steps import timed_step
from executor.engine import Engine
from executor.errors import BuildFailed, PluginRejected, UploadCheckBusy
from executor.intake.build_scan import BuildScan
from executor.intake.imports import MAX_MODULES_BYTES, installed_modules, unresolved
from executor.settings import Settings

__all__ = [
    "IMPORT_CHECK_STEP",
    "PROBE_LABEL",
    "ImageChecks",
    "ImportCheck",
    "Installed",
    "InstalledReader",
    "Scanned",
    "SourceScanner",
]

IMPORT_CHECK_STEP = "Import check: loading main.py as a run will (sandboxed, no network)"
PROBE_LABEL = (
    "io.plugin-executor.build-probe"  # the never-started container pip freeze is read from
)

# (image id, on_output): proves a built image loads its plugin, raises ``BuildFailed``.
ImportCheck = Callable[[str, Callable[[str], None]], None]
# A source archive's imports and bytecode, read and compiled in an upload check worker
# (parsing and compiling stay out of this process).
SourceScanner = Callable[[bytes], BuildScan]


class Installed(NamedTuple):
    """What the requirements installed, read back from the image."""

    freeze: str  # ``pip freeze``, the flavor's unchanged pins left out
    modules: list[str]  # the top-level modules of the installed distributions


def read_installed(engine: Engine, build: BuildContext, image_id: str) -> Installed:
    """The image's ``pip freeze`` and installed modules, both read from one probe container
    (nothing read when the plugin has no requirements: then the flavor's label lists its
    modules). Written by code the requirements may influence: each read up to 1 MiB."""
    if not build.has_requirements:
        return Installed("", [])
    found = engine.images.read_files(
        image_id, [FREEZE_PATH, MODULES_PATH], {PROBE_LABEL: "true"}, MAX_MODULES_BYTES
    )
    freeze, modules = (
        (found[path] or b"").decode("utf-8", "replace") for path in (FREEZE_PATH, MODULES_PATH)
    )
    return Installed(freeze, list(installed_modules(modules)))


class InstalledReader:
    """``read_installed`` once per set of requirement layers: a plugin's code is the last
    step of its image (``executor.build.context``), so every code-only version, and every
    plugin with the same requirements on the same flavor, is built on one parent image,
    whose files the first probe read. Keeps the last ``size`` parents' readings."""

    def __init__(self, engine: Engine, size: int = 256) -> None:
        self.engine = engine
        self.size = size
        self._read: OrderedDict[str, Installed] = OrderedDict()
        self._lock = threading.Lock()  # builds run on several threads

    def installed(self, build: BuildContext, image_id: str) -> Installed:
        parent = self.engine.images.parent(image_id) if build.has_requirements else None
        if parent is None:
            return read_installed(self.engine, build, image_id)
        with self._lock:
            if (known := self._read.get(parent)) is not None:
                self._read.move_to_end(parent)
                return known
        found = read_installed(self.engine, build, image_id)
        with self._lock:
            self._read[parent] = found
            if len(self._read) > self.size:
                self._read.popitem(last=False)
        return found


class Scanned(NamedTuple):
    scan: BuildScan
    flavor: list[str]  # the flavor's top-level modules


class ImageChecks:
    """The import warnings and the import check of one builder's builds; ``note`` and
    ``add`` are the build log's (an executor line, build output)."""

    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        import_check: ImportCheck | None = None,
        source_scan: SourceScanner | None = None,
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.import_check = import_check
        self.source_scan = source_scan
        self.installed = InstalledReader(engine).installed

    def scan_source(self, build: BuildContext, note: Callable[[str], None]) -> Scanned | None:
        """Before the build: the plugin's imports and bytecode, and the flavor's modules (a
        missing flavor image fails the build here, with its own error; a source that cannot
        be read is noted, and the build goes on without warnings or bytecode)."""
        if self.source_scan is None:
            return None
        provided = flavor_modules(self.engine, self.settings.images, build.runtime)
        try:
            return Scanned(self.source_scan(build.source), provided)
        except (PluginRejected, UploadCheckBusy) as exc:  # only warnings and speed are lost
            note(f"(no import warnings: {exc.message})\n")
            return None

    def warn_imports(
        self,
        build: BuildContext,
        installed: Installed,
        scanned: Scanned | None,
        note: Callable[[str], None],
    ) -> None:
        """Once the image is built: warn of each import that neither the flavor nor what
        the requirements installed provides."""
        if scanned is None:
            return
        provided = [*scanned.flavor, *installed.modules]
        for warning in unresolved(scanned.scan.imports, provided, build.runtime):
            note(warning + "\n")

    def check_import(
        self,
        build: BuildContext,
        image_id: str,
        note: Callable[[str], None],
        add: Callable[[str], None],
    ) -> None:
        if self.import_check is None:
            return
        try:
            with timed_step(note, IMPORT_CHECK_STEP):
                self.import_check(image_id, add)
        except BuildFailed:
            self.engine.images.remove(build.tag)  # a FAILED version keeps no image
            raise
