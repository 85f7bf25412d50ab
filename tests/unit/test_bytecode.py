"""The plugin's bytecode compiled for its image (executor.intake.bytecode): .pyc files the
interpreter loads instead of compiling, and only while they match the source."""

from __future__ import annotations

import importlib.util
import marshal
import subprocess
import sys
from pathlib import Path

from executor.intake.bytecode import compile_sources, pyc_path

SOURCE = b"def answer():\n    return 42\n"


def write(folder: Path, files: dict[str, bytes]) -> None:
    for path, content in files.items():
        target = folder / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)


def code_source(folder: Path, module: str) -> str:
    """Where ``python -v`` says the code of ``module`` came from (a .pyc or the source)."""
    code = f"import sys; sys.path.insert(0, {str(folder)!r}); import {module}"
    done = subprocess.run(
        [sys.executable, "-I", "-v", "-c", f"{code}; assert {module}.answer() == 42"],
        capture_output=True,
        text=True,
        check=True,
    )
    marker = "# code object from "
    found = [
        line.removeprefix(marker).strip("'")
        for line in done.stderr.splitlines()
        if line.startswith(marker) and str(folder) in line
    ]
    assert len(found) == 1, done.stderr[-2000:]
    return found[0].removeprefix(str(folder))


def test_the_pyc_is_a_checked_hash_pyc_of_the_source() -> None:
    compiled = compile_sources({"pkg/mod.py": SOURCE})
    data = compiled.files[f"pkg/__pycache__/mod.{sys.implementation.cache_tag}.pyc"]
    assert data[:4] == importlib.util.MAGIC_NUMBER
    assert int.from_bytes(data[4:8], "little") == 0b11  # hash-based, checked (PEP 552)
    assert data[8:16] == importlib.util.source_hash(SOURCE)
    namespace: dict[str, object] = {}
    exec(marshal.loads(data[16:]), namespace)  # the code of the source, nothing else
    assert namespace["answer"]() == 42  # type: ignore[operator]
    assert compiled.warnings == ()


def test_the_interpreter_loads_the_pyc_and_compiles_again_a_changed_source(
    tmp_path: Path,
) -> None:
    compiled = compile_sources({"mod.py": SOURCE})
    write(tmp_path, {"mod.py": SOURCE, **compiled.files})
    # Read-only like an image's code for a run: the interpreter could not write a .pyc.
    for path in tmp_path.rglob("*"):
        path.chmod(0o555 if path.is_dir() else 0o444)
    try:
        assert code_source(tmp_path, "mod") == f"/{pyc_path('mod.py')}"
        (tmp_path / "mod.py").chmod(0o644)
        (tmp_path / "mod.py").write_bytes(SOURCE + b"# changed\n")
        assert code_source(tmp_path, "mod") == "/mod.py"
    finally:
        for path in tmp_path.rglob("*"):
            path.chmod(0o755 if path.is_dir() else 0o644)


def test_what_does_not_compile_has_no_pyc_and_warnings_quote_their_line() -> None:
    compiled = compile_sources(
        {
            "main.py": b"x = 1\nif x is 1:\n    pass\n",
            "broken.py": b"def (:\n",
            "nul.py": b"x = 1\x00\n",
            "notes.txt": b"not python",
        }
    )
    assert list(compiled.files) == [pyc_path("main.py")]
    assert compiled.warnings == (
        'main.py:2: SyntaxWarning: "is" with a literal. Did you mean "=="?\n  if x is 1:',
    )
