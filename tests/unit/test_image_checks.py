"""A build's import check as the builder is given it (a constructor parameter, no Docker):
a check that fails removes the built image and fails the step; a builder given none makes
no check and keeps the image."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from executor.build.builder import Builder
from executor.build.context import BuildContext
from executor.build.image_checks import IMPORT_CHECK_STEP, ImageChecks
from executor.buildlog import step_line
from executor.engine.fake import FakeEngine
from executor.errors import BuildFailed
from executor.metrics import Metrics, QueueFigures
from executor.settings import Settings
from executor.statuses import RuntimeFlavor
from executor.store.db import Database

SETTINGS = Settings(operator_key="pe_op_image-checks-0123456789")
BUILD = BuildContext("v1", "plug", 1, "", b"", RuntimeFlavor.MINIMAL)


def built() -> FakeEngine:
    engine = FakeEngine()
    engine.images.add(BUILD.tag)
    return engine


def check_failing(image_id: str, on_output: Callable[[str], None]) -> None:
    on_output(f"Traceback of {image_id}\n")
    raise BuildFailed("the plugin cannot be imported: main.py: ImportError: x")


def test_a_failing_import_check_fails_the_step_and_removes_the_image() -> None:
    engine = built()
    notes: list[str] = []
    output: list[str] = []
    checks = ImageChecks(engine, SETTINGS, import_check=check_failing)

    with pytest.raises(BuildFailed, match=r"^the plugin cannot be imported: main\.py"):
        checks.check_import(BUILD, "sha256:abc", notes.append, output.append)

    assert output == ["Traceback of sha256:abc\n"]
    assert notes[0] == step_line(IMPORT_CHECK_STEP)
    assert notes[1].startswith(step_line(f"{IMPORT_CHECK_STEP}: FAILED after").rstrip("\n"))
    assert not engine.images.exists(BUILD.tag)


def test_the_builder_runs_the_import_check_it_was_given(tmp_path: Path) -> None:
    engine = built()
    seen: list[str] = []
    db = Database(f"sqlite:///{tmp_path / 'store.db'}")
    builder = Builder(
        db,
        engine,
        SETTINGS,
        Metrics(lambda: QueueFigures({}, None, {})),
        import_check=lambda image_id, _out: seen.append(image_id),
    )
    try:
        builder.checks.check_import(BUILD, "sha256:abc", lambda _: None, lambda _: None)
    finally:
        builder.close()
        db.dispose()

    assert seen == ["sha256:abc"]
    assert engine.images.exists(BUILD.tag)


def test_a_builder_given_no_import_check_makes_none() -> None:
    engine = built()
    notes: list[str] = []
    checks = ImageChecks(engine, SETTINGS)

    checks.check_import(BUILD, "sha256:abc", notes.append, notes.append)

    assert notes == []
    assert engine.images.exists(BUILD.tag)
