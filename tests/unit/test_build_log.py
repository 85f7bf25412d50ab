"""The build log's steps and kinds of lines, what the CLI shows of it, and the installed
modules the unresolved-import warning decides from (issue 26, item 9; no Docker needed)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from executor.build.context import MODULES_CODE, MODULES_PATH, dockerfile
from executor.build.steps import EnginePhases, StepEnd, timed_step
from executor.buildlog import LineKind, line_kind
from executor.cli.builds import shown_lines
from executor.errors import BuildFailed
from executor.intake.imports import MAX_MODULES, installed_modules, unresolved_imports
from executor.settings import Settings
from executor.statuses import RuntimeFlavor

# The classic builder's messages for a plugin image with requirements, as docker-py's
# decoded stream gives them (one dict's "stream" each): the Step headers and layer lines
# arrive alone, a RUN step's output in chunks that need not end a line.
ENGINE_STREAM = [
    "Step 1/9 : FROM plugin-executor-runtime-minimal:latest",
    "\n",
    " ---> 5d2c3e4f5a6b\n",
    "Step 2/9 : USER root",
    "\n",
    " ---> Using cache\n",
    " ---> 0a1b2c3d4e5f\n",
    "Step 3/9 : COPY requirements.txt /opt/build/requirements.txt",
    "\n",
    " ---> 1b2c3d4e5f6a\n",
    "Step 4/9 : RUN PIP_CONFIG_FILE=/dev/null python3 -m pip install --isolated -r x",
    "\n",
    " ---> Running in 9f8e7d6c5b4a\n",
    "Collecting python-dateutil==2.9.0.post0\n  Downloading python_dateutil",
    "-2.9.0.post0-py2.py3-none-any.whl (229 kB)\n",
    "Successfully installed python-dateutil-2.9.0.post0 six-1.16.0\n",
    "Removing intermediate container 9f8e7d6c5b4a\n",
    " ---> 2c3d4e5f6a7b\n",
    "Step 5/9 : USER root",
    "\n",
    " ---> Running in 8e7d6c5b4a3f\n",
    "Removing intermediate container 8e7d6c5b4a3f\n",
    " ---> 3d4e5f6a7b8c\n",
    "Step 6/9 : ADD source.tar.gz /opt/plugin/plugin_code/",
    "\n",
    " ---> 4e5f6a7b8c9d\n",
    "Step 7/9 : RUN chmod -R a+rX,go-w /opt/plugin/plugin_code",
    "\n",
    " ---> Running in 7d6c5b4a3f2e\n",
    "Removing intermediate container 7d6c5b4a3f2e\n",
    " ---> 5f6a7b8c9d0e\n",
    "Successfully built 5f6a7b8c9d0e\n",
    "Successfully tagged plugin-executor/p-x:v1\n",
]


def ticks() -> Iterator[float]:
    """A clock that advances 1.5 s at each reading."""
    now = 0.0
    while True:
        yield now
        now += 1.5


def test_the_engines_steps_become_timed_step_lines_and_its_lines_pass_whole() -> None:
    out: list[str] = []
    clock = ticks()
    phases = EnginePhases(out.append, lambda text: out.append("NOTE " + text), clock.__next__)
    for chunk in ENGINE_STREAM:
        phases(chunk)
    phases.finish(StepEnd.DONE)
    assert [line for line in out if line.startswith("NOTE")] == [
        "NOTE ==> Preparing the runtime flavor image\n",
        "NOTE ==> Preparing the runtime flavor image: done in 1.5 s\n",
        "NOTE ==> Installing requirements.txt (pip)\n",
        "NOTE ==> Installing requirements.txt (pip): done in 1.5 s\n",
        "NOTE ==> Adding the plugin's code\n",
        "NOTE ==> Adding the plugin's code: done in 1.5 s\n",
    ]
    # Every engine line passes on whole, in order, right after its step's line.
    assert [line for line in out if not line.startswith("NOTE")] == "".join(
        ENGINE_STREAM
    ).splitlines(keepends=True)
    pip = out.index("NOTE ==> Installing requirements.txt (pip)\n")
    assert out[pip + 1].startswith("Step 4/9 : RUN PIP_CONFIG_FILE")


def test_a_step_from_the_engines_cache_says_so_and_a_failed_step_says_failed() -> None:
    out: list[str] = []
    phases = EnginePhases(out.append, out.append, ticks().__next__)
    for chunk in ["Step 4/9 : RUN python3 -m pip install -r x\n", " ---> Using cache\n"]:
        phases(chunk)
    phases(
        "Step 6/9 : ADD source.tar.gz /opt/plugin/plugin_code/\n ---> Running in 1a2b\n"
        "partial output, no newline"
    )
    phases.finish(StepEnd.FAILED)
    assert out[3:] == [
        "==> Installing requirements.txt (pip): done in 1.5 s (from the engine's cache)\n",
        "==> Adding the plugin's code\n",
        "Step 6/9 : ADD source.tar.gz /opt/plugin/plugin_code/\n",
        " ---> Running in 1a2b\n",
        "partial output, no newline\n",
        "==> Adding the plugin's code: FAILED after 1.5 s\n",
    ]


def test_a_build_stopped_by_a_shutdown_says_stopped() -> None:
    out: list[str] = []
    phases = EnginePhases(out.append, out.append, ticks().__next__)
    phases("Step 4/9 : RUN python3 -m pip install -r x\n")
    phases.finish(StepEnd.STOPPED)
    assert out[-1] == "==> Installing requirements.txt (pip): stopped after 1.5 s\n"


def test_a_timed_step_says_its_time_or_that_it_failed() -> None:
    out: list[str] = []
    with timed_step(out.append, "Pushing to the registry r:5000", ticks().__next__):
        out.append("pushing\n")
    with (
        pytest.raises(BuildFailed),
        timed_step(out.append, "Import check", ticks().__next__),
    ):
        raise BuildFailed("no")
    assert out == [
        "==> Pushing to the registry r:5000\n",
        "pushing\n",
        "==> Pushing to the registry r:5000: done in 1.5 s\n",
        "==> Import check\n",
        "==> Import check: FAILED after 1.5 s\n",
    ]


LOG = (
    "==> Installing requirements.txt (pip)\n"
    "Step 4/9 : RUN PIP_CONFIG_FILE=/dev/null python3 -m pip install -r x\n"
    " ---> Running in 9f8e7d6c5b4a\n"
    "ERROR: Could not find a version that satisfies the requirement nosuch==1\n"
    "Successfully built abc deadbeef\n"
    "Removing intermediate container 9f8e7d6c5b4a\n"
    " ---> 2c3d4e5f6a7b\n"
    "Successfully built 2c3d4e5f6a7b\n"
    "Successfully tagged plugin-executor/p-x:v1\n"
    "==> Installing requirements.txt (pip): FAILED after 3.0 s\n"
    "WARNING: main.py, line 1: 'import x': ...\n"
    "Step by step, the plugin printed this\n"
    "\n"
    "BUILD FAILED: The command '/bin/sh -c pip' returned a non-zero code: 1\n"
)


def test_the_cli_hides_only_the_engines_layer_lines_unless_verbose() -> None:
    assert shown_lines(LOG, verbose=True) == LOG
    assert shown_lines(LOG, verbose=False) == (
        "==> Installing requirements.txt (pip)\n"
        "ERROR: Could not find a version that satisfies the requirement nosuch==1\n"
        "Successfully built abc deadbeef\n"
        "==> Installing requirements.txt (pip): FAILED after 3.0 s\n"
        "WARNING: main.py, line 1: 'import x': ...\n"
        "Step by step, the plugin printed this\n"
        "\n"
        "BUILD FAILED: The command '/bin/sh -c pip' returned a non-zero code: 1\n"
    )
    # A line ends at a newline only; a part line is judged as it is.
    assert shown_lines("a\r ---> b\n ---> c", verbose=False) == "a\r ---> b\n"
    assert shown_lines("==> x\npip says", verbose=False) == "==> x\npip says"
    assert [line_kind(line) for line in LOG.splitlines()[:3]] == [
        LineKind.STEP,
        LineKind.DETAIL,
        LineKind.DETAIL,
    ]


def _distribution(site: Path, folder: str, name: str, files: dict[str, str]) -> None:
    info = site / folder
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    for file_name, text in files.items():
        (info / file_name).write_text(text)


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """Distributions whose import names differ from their names: two declare their
    top-level modules (top_level.txt), two only list their files (RECORD)."""
    site = tmp_path / "site"
    site.mkdir()
    _distribution(
        site,
        "python_dateutil-2.9.0.post0.dist-info",
        "python-dateutil",
        {"top_level.txt": "dateutil\n"},
    )
    _distribution(
        site, "scikit_learn-1.5.0.dist-info", "scikit-learn", {"top_level.txt": "sklearn\n"}
    )
    record = (
        "_yaml/__init__.py,,\nyaml/__init__.py,,\nyaml/loader.py,,\nPyYAML.dist-info/METADATA,,\n"
    )
    _distribution(site, "PyYAML-6.0.2.dist-info", "PyYAML", {"RECORD": record})
    record = "bs4/__init__.py,,\nbs4/element.py,,\nbeautifulsoup4.dist-info/RECORD,,\n"
    _distribution(site, "beautifulsoup4-4.12.3.dist-info", "beautifulsoup4", {"RECORD": record})
    return site


def test_installed_distributions_map_to_the_modules_they_installed(site: Path) -> None:
    # The image's own code, run on these distributions only (-S: no site-packages).
    listing = subprocess.run(
        [sys.executable, "-S", "-c", MODULES_CODE],
        env={"PYTHONPATH": str(site)},
        cwd=site,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert installed_modules(listing) == {
        "_yaml": ("PyYAML",),
        "bs4": ("beautifulsoup4",),
        "dateutil": ("python-dateutil",),
        "sklearn": ("scikit-learn",),
        "yaml": ("PyYAML",),
    }
    files = {
        "main.py": b"from dateutil import parser\nimport yaml\nfrom sklearn import svm\n"
        b"from bs4 import BeautifulSoup\nimport python_dateutil\nimport cv2\n"
    }
    warned = unresolved_imports(files, list(installed_modules(listing)), "minimal")
    assert [warning.split(":")[0:3] for warning in warned] == [
        ["WARNING", " main.py, line 5", " 'import python_dateutil'"],
        ["WARNING", " main.py, line 6", " 'import cv2'"],
    ]


def test_the_image_lists_its_installed_modules_after_pip() -> None:
    text = dockerfile(Settings(operator_key="k"), True, RuntimeFlavor.MINIMAL)
    pip_line = next(line for line in text.splitlines() if "pip install" in line)
    assert pip_line.endswith(f' && {{ python3 -c "{MODULES_CODE}" > {MODULES_PATH} || true; }}')


def test_the_installed_modules_list_is_read_bounded_and_names_matched_whole() -> None:
    listing = (
        "dateutil python-dateutil\n"
        "../etc/passwd evil\n"
        "1abc nope\n"
        "yaml; rm x\n"
        "\n"
        "   \n"
        "ok_name a b c\n"
    )
    assert installed_modules(listing) == {
        "dateutil": ("python-dateutil",),
        "ok_name": ("a", "b", "c"),
    }
    many = "".join(f"m{n} d\n" for n in range(MAX_MODULES + 10))
    assert len(installed_modules(many)) == MAX_MODULES
    assert installed_modules("x" * 5_000_000) == {}
