"""The README and docs/ name the code as it is: every file path they quote exists."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# A quoted path from the repository's root, or a module path inside one of its packages.
QUOTED_PATH = re.compile(r"`((?:[A-Za-z0-9_.-]+/)+[A-Za-z0-9_.-]+)")
PACKAGES = (ROOT, ROOT / "executor", ROOT / "runtime_image", ROOT / "tests")
# What a bench or test run writes, a plugin folder's own files, an operator's folder: not
# shipped.
WRITTEN_LATER = ("bench/results/", "artifacts/", "events/", "REGISTRY_DIR/")


def missing_paths(text: str) -> list[str]:
    """The quoted paths of ``text`` (with a file suffix or a trailing folder) found nowhere."""
    missing = []
    for match in QUOTED_PATH.finditer(text):
        path = match.group(1).rstrip(".")
        if "." not in path.rsplit("/", 1)[-1] or path.startswith(WRITTEN_LATER):
            continue  # a folder, a URL path or an output: not a file of the repository
        if not any((base / path).exists() for base in PACKAGES):
            missing.append(path)
    return missing


def test_every_file_the_docs_quote_exists() -> None:
    found = {str(doc.relative_to(ROOT)): missing_paths(doc.read_text()) for doc in DOCS}
    assert {doc: paths for doc, paths in found.items() if paths} == {}


def test_a_moved_module_is_caught() -> None:
    assert missing_paths("see `run/runner.py` and `store/invocations.py`") == [
        "store/invocations.py"
    ]
