"""Runtime flavor choice, plugin.toml, the forbidden requirements.txt, the unresolved-import
warning and the import check's error text (no Docker needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from executor.errors import PluginRejected, RequirementsForbidden, UnknownRuntime
from executor.intake.imports import unresolved_imports
from executor.intake.manifest import choose_flavor
from executor.intake.upload import UploadLimits, read_upload
from executor.sandbox.import_check import import_failure
from executor.statuses import RuntimeFlavor
from executor.store.db import Database
from tests.flavor_migration import check_old_versions_ran_on_the_minimal_flavor

MAIN = (
    b"from kili.plugins import PluginCore\n"
    b"class PluginHandler(PluginCore):\n"
    b"    def on_submit(self, label, asset_id):\n"
    b"        pass\n"
)
ALLOWED = ["minimal", "kili", "datascience"]


def upload(files: dict[str, bytes], **limits: bool) -> tuple[str | None, str]:
    from executor.intake.archive import write_tar_gz

    source = read_upload("p.tar.gz", write_tar_gz(files), UploadLimits(**limits))
    return source.runtime, source.requirements


def test_the_form_field_wins_over_plugin_toml_which_wins_over_the_default() -> None:
    toml_runtime, _ = upload({"main.py": MAIN, "plugin.toml": b'runtime = "datascience"\n'})
    assert toml_runtime == "datascience"
    assert choose_flavor("minimal", toml_runtime, RuntimeFlavor.KILI) == RuntimeFlavor.MINIMAL
    assert choose_flavor(None, toml_runtime, RuntimeFlavor.KILI) == RuntimeFlavor.DATASCIENCE
    assert choose_flavor(None, None, RuntimeFlavor.KILI) == RuntimeFlavor.KILI
    assert upload({"main.py": MAIN, "plugin.toml": b"# nothing chosen\n"})[0] is None


def test_an_unknown_form_runtime_names_the_allowed_ones() -> None:
    with pytest.raises(UnknownRuntime) as caught:
        choose_flavor("KILI", None, RuntimeFlavor.KILI)
    assert caught.value.to_dict() == {
        "code": "unknown_runtime",
        "message": "runtime: unknown runtime 'KILI'; choose one of minimal, kili, datascience "
        "(GET /v1/runtimes lists their packages).",
        "field": "runtime",
        "allowed": ALLOWED,
    }


@pytest.mark.parametrize(
    ("toml", "message", "line"),
    [
        (
            b"[tool]\n\nruntime = 3\n",
            "plugin.toml: unknown key 'tool'; the only key is 'runtime'.",
            None,
        ),
        (
            b'\nruntime = ["kili"]\n',
            "plugin.toml: runtime: unknown runtime ['kili']; choose one of minimal, kili, "
            "datascience (GET /v1/runtimes lists their packages).",
            2,
        ),
        (
            b'# flavor\nruntime = "kili\n',
            "plugin.toml is not valid TOML (Illegal character '\\n' (at line 2, column 16)): "
            "write 'runtime = \"kili\"' and upload again.",
            2,
        ),
    ],
)
def test_a_bad_plugin_toml_is_refused_with_file_and_line(
    toml: bytes, message: str, line: int | None
) -> None:
    with pytest.raises(PluginRejected) as caught:
        upload({"main.py": MAIN, "plugin.toml": toml})
    assert (caught.value.message, caught.value.file, caught.value.line) == (
        message,
        "plugin.toml",
        line,
    )


def test_requirements_txt_is_refused_when_the_operator_forbids_it() -> None:
    files = {"main.py": MAIN, "requirements.txt": b"requests==2.31.0\n"}
    assert upload(files)[1] == "requests==2.31.0\n"
    with pytest.raises(RequirementsForbidden) as caught:
        upload(files, allow_requirements=False)
    assert caught.value.to_dict()["code"] == "requirements_forbidden"
    assert caught.value.file == "requirements.txt"


def test_unresolved_module_level_imports_are_warned_about() -> None:
    files = {
        "main.py": b"import os, kili\nimport numpy\nfrom sklearn import svm\nfrom . import rules\n"
        b"import rules\nfrom pkg.sub import x\nimport plugin_runtime\n"
        b"def later():\n    import inside_a_function\n"
        b"try:\n    import yaml\nexcept ImportError:\n    yaml = None\n",
        "rules.py": b"import cv2\n",
        "pkg/sub.py": b"x = 1\n",
    }
    # Requirement names decide nothing: only the modules installed (the flavor's here).
    warnings = unresolved_imports(files, ["kili"], "kili")
    assert warnings == [
        f"WARNING: {path}, line {line}: 'import {module}': {module} is not in the standard "
        "library, the plugin, the 'kili' runtime flavor or the packages requirements.txt "
        "installed; add its package to requirements.txt or choose a flavor that has it"
        for path, line, module in [
            ("main.py", 2, "numpy"),
            ("main.py", 3, "sklearn"),
            ("main.py", 11, "yaml"),
            ("rules.py", 1, "cv2"),
        ]
    ]
    assert unresolved_imports(files, ["kili", "numpy", "sklearn", "yaml", "cv2"], "x") == []


TRACEBACK = """could not import plugin_code.main (/opt/plugin/plugin_code/main.py):
Traceback (most recent call last):
  File "/usr/lib/python3.11/importlib/__init__.py", line 126, in import_module
    return _bootstrap._gcd_import(name[level:], package, level)
  File "/opt/plugin/plugin_code/main.py", line 1, in <module>
    from .settings import LIMIT
  File "/opt/plugin/plugin_code/settings.py", line 7, in <module>
    LIMIT = int("x")
            ^^^^^^^^
ValueError: invalid literal for int() with base 10: 'x'
"""


def test_the_import_failure_names_the_last_plugin_frame_and_the_exception() -> None:
    assert import_failure(TRACEBACK) == (
        "the plugin cannot be imported: settings.py, line 7: ValueError: invalid literal for "
        "int() with base 10: 'x' (traceback in the build log)"
    )
    assert import_failure("/opt/plugin/plugin_code/main.py defines no class PluginHandler\n") == (
        "main.py defines no class PluginHandler once imported (it is deleted or replaced at "
        "module level): keep a class PluginHandler in main.py"
    )


def test_versions_from_before_0015_ran_on_the_minimal_flavor(tmp_path: Path) -> None:
    database = Database(f"sqlite:///{tmp_path / 'store.db'}")
    try:
        check_old_versions_ran_on_the_minimal_flavor(database)
    finally:
        database.dispose()
