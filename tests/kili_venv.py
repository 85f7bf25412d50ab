"""The Kili SDK's own virtualenv (.venv-kili), made once: the SDK pins packages the dev
tools cannot install beside (pyproject: kili-client).

The Kili SDK tests take it from ``made()``; ``scripts/test`` runs this module in the
background while lint and types run, so a fresh clone's install is not on the tests' path.
Both take the same file lock: whoever comes second waits for the first to finish.
"""

from __future__ import annotations

import fcntl
import subprocess
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
KILI_VENV = REPO / ".venv-kili"


def made() -> Path:
    """The Python of .venv-kili, made if it is not complete."""
    python = KILI_VENV / "bin" / "python"
    # Written once the SDK is installed: a venv cut short mid-install is made again.
    installed = KILI_VENV / "installed"
    with open(REPO / ".venv-kili.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not installed.exists():
            pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
            wanted = pyproject["project"]["optional-dependencies"]["kili-client"]
            subprocess.run([sys.executable, "-m", "venv", "--clear", str(KILI_VENV)], check=True)
            pip = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
            subprocess.run([*pip, *wanted], check=True)
            installed.write_text("\n".join(wanted) + "\n")
    return python


if __name__ == "__main__":
    print(made())
