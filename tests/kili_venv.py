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
            # uv (a dev tool of the lock, beside this interpreter) makes the venv and installs
            # into it, in parallel, for a fraction of pip's CPU at the start of every fresh run.
            uv = str(Path(sys.executable).parent / "uv")
            subprocess.run([uv, "venv", "-q", "--clear", "--python", sys.executable,
                            str(KILI_VENV)], check=True)  # fmt: skip
            install = [uv, "pip", "install", "-q", "--python", str(python), "--compile-bytecode"]
            subprocess.run([*install, *wanted], check=True)
            installed.write_text("\n".join(wanted) + "\n")
    return python


if __name__ == "__main__":
    print(made())
