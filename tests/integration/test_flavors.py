"""Runtime flavors and the build's import check, on the real engine (issue 16, items 1-2).

The flavor images are the ones deploy/build-flavor-images.sh built for the test runtime
image (``<runtime>-kili:<tag>``, ...), made by the ``runtime_image`` fixture when missing.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from executor.intake.upload import pack_directory
from executor.statuses import RuntimeFlavor
from tests.conftest import RunningServer, ServerFactory
from tests.e2e.test_cli import cli

KILI_PIN = "26.2.4"
NUMPY_PIN = "2.4.6"
DATASCIENCE_PINS = {
    "kili": KILI_PIN,
    "numpy": NUMPY_PIN,
    "opencv-python-headless": "5.0.0.93",
    "pandas": "3.1.1",
    "pillow": "13.0.0",
    "requests": "2.34.2",
    "scikit-learn": "1.9.1",
}
HANDLER = (
    "class PluginHandler(PluginCore):\n"
    "    def on_submit(self, label, asset_id):\n"
    "        self.logger.info('ran')\n"
)
KILI_PLUGIN = "from kili.plugins import PluginCore\n\n" + HANDLER


def write_plugin(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def upload(server: RunningServer, name: str, plugin: Path, **form: str) -> httpx.Response:
    return server.api.post(
        "/v1/plugins",
        data={"name": name, **form},
        files={"file": (f"{name}.tar.gz", pack_directory(plugin))},
    )


def push(server: RunningServer, name: str, plugin: Path, **form: str) -> dict[str, Any]:
    """Upload and wait for the build to end (ACTIVE or FAILED)."""
    response = upload(server, name, plugin, **form)
    assert response.status_code == 202, response.text
    return server.wait_build(name, response.json()["version"])


def plugin_names(server: RunningServer) -> list[str]:
    return [p["name"] for p in server.api.get("/v1/plugins").json()]


@pytest.fixture(scope="module")
def strict(server_factory: ServerFactory) -> Iterator[RunningServer]:
    """An operator who allows no requirements.txt and defaults to the minimal flavor."""
    yield server_factory(build_allow_requirements=False, runtime_default_flavor="minimal")


@pytest.fixture(scope="module")
def hasty(server_factory: ServerFactory) -> Iterator[RunningServer]:
    """The import check gets 1 s: only the plugin whose import never ends is built here."""
    yield server_factory(build_import_timeout_s=1)


@pytest.fixture(scope="module")
def patient(server_factory: ServerFactory) -> Iterator[RunningServer]:
    """Runs get 10 minutes: numpy, pandas, scikit-learn and OpenCV import slowly on loaded
    CI cores."""
    yield server_factory(sandbox={"timeout_s": 600})


# --- item 1: flavors


def test_runtimes_lists_the_flavors_with_their_package_versions(server: RunningServer) -> None:
    response = server.api.get("/v1/runtimes")
    assert response.status_code == 200, response.text
    flavors = {f["name"]: f for f in response.json()}
    assert list(flavors) == ["minimal", "kili", "datascience"]
    assert [f["default"] for f in flavors.values()] == [False, True, False]
    assert all(f["available"] for f in flavors.values())
    runtime = server.settings.images.runtime_image
    assert flavors["kili"]["image"] == server.settings.images.flavor_image(RuntimeFlavor.KILI)
    assert flavors["kili"]["image"].startswith(runtime.rpartition(":")[0] + "-kili:")
    assert "kili" not in flavors["minimal"]["packages"]
    assert flavors["kili"]["packages"]["kili"] == KILI_PIN
    assert flavors["kili"]["packages"]["numpy"] == NUMPY_PIN
    assert "numpy" not in flavors["minimal"]["packages"]
    ds = flavors["datascience"]["packages"]
    assert {name: ds[name] for name in DATASCIENCE_PINS} == DATASCIENCE_PINS


def test_kili_plugin_without_requirements_runs_on_the_default_flavor(
    server: RunningServer, tmp_path: Path
) -> None:
    plugin = write_plugin(
        tmp_path,
        {
            "main.py": "import kili\nfrom kili.plugins import PluginCore\n\n"
            "class PluginHandler(PluginCore):\n"
            "    def on_submit(self, label, asset_id):\n"
            "        self.logger.info('kili %s, self.kili %s', kili.__version__,"
            " type(self.kili).__name__)\n"
        },
    )
    build = push(server, "kili_default", plugin)
    assert build["status"] == "ACTIVE", build["log"]
    assert "FROM " + server.settings.images.flavor_image("kili") in build["log"]  # type: ignore[arg-type]
    assert "import check: plugin_code.main imported, PluginHandler found" in build["log"]
    (version,) = server.api.get("/v1/plugins/kili_default").json()["versions"]
    assert version["runtime"] == "kili"
    server.activate("kili_default", "flavor-kili")
    run = server.run_event(type="onSubmit", project_id="flavor-kili", asset_id="a1", label={})
    assert run["status"] == "succeeded", server.logs(run_id=run["id"])
    contents = [r["content"] for r in server.logs(run_id=run["id"])]
    assert f"kili {KILI_PIN}, self.kili Kili" in contents


def test_kilis_single_file_numpy_plugin_runs_on_the_default_flavor(
    server: RunningServer, tmp_path: Path
) -> None:
    """Kili's plugin guide's single-file plugin imports numpy with no requirements file."""
    plugin = write_plugin(
        tmp_path,
        {
            "main.py": "import numpy as np\nfrom kili.plugins import PluginCore\n\n"
            "class PluginHandler(PluginCore):\n"
            "    def on_submit(self, label, asset_id):\n"
            "        self.logger.info('numpy %s says %d', np.__version__, np.array([1, 2]).sum())\n"
        },
    )
    build = push(server, "kili_numpy", plugin)
    assert build["status"] == "ACTIVE", build["log"]
    assert "WARNING" not in build["log"]  # numpy is one of the flavor's modules
    server.activate("kili_numpy", "flavor-numpy")
    run = server.run_event(type="onSubmit", project_id="flavor-numpy", asset_id="a1", label={})
    assert run["status"] == "succeeded", server.logs(run_id=run["id"])
    assert f"numpy {NUMPY_PIN} says 3" in [r["content"] for r in server.logs(run_id=run["id"])]


def test_a_pinned_requirement_wins_over_the_flavors_package(
    server: RunningServer, tmp_path: Path
) -> None:
    plugin = write_plugin(
        tmp_path,
        {
            "main.py": "import requests\nfrom kili.plugins import PluginCore\n\n"
            "class PluginHandler(PluginCore):\n"
            "    def on_submit(self, label, asset_id):\n"
            "        self.logger.info('requests %s', requests.__version__)\n",
            "requirements.txt": "requests==2.31.0\n",
        },
    )
    build = push(server, "older_requests", plugin)
    assert build["status"] == "ACTIVE", build["log"]
    # The version's freeze is what its requirements changed over the flavor's packages.
    assert build["pip_freeze"] == "requests==2.31.0\n"
    server.activate("older_requests", "flavor-pin")
    run = server.run_event(type="onSubmit", project_id="flavor-pin", asset_id="a1", label={})
    assert run["status"] == "succeeded", server.logs(run_id=run["id"])
    assert "requests 2.31.0" in [r["content"] for r in server.logs(run_id=run["id"])]


def test_plugin_toml_chooses_the_datascience_flavor(patient: RunningServer, tmp_path: Path) -> None:
    server = patient
    plugin = write_plugin(
        tmp_path,
        {
            "plugin.toml": '# the runtime this plugin needs\nruntime = "datascience"\n',
            "main.py": "import cv2, numpy, pandas, PIL, requests, sklearn\n"
            "from kili.plugins import PluginCore\n\n"
            "class PluginHandler(PluginCore):\n"
            "    def on_submit(self, label, asset_id):\n"
            "        mods = (numpy, pandas, sklearn, cv2, PIL, requests)\n"
            "        self.logger.info(' '.join(m.__version__ for m in mods))\n",
        },
    )
    build = push(server, "science", plugin)
    assert build["status"] == "ACTIVE", build["log"]
    assert "WARNING" not in build["log"]
    (version,) = server.api.get("/v1/plugins/science").json()["versions"]
    assert version["runtime"] == "datascience"
    server.activate("science", "flavor-ds")
    run = server.run_event(type="onSubmit", project_id="flavor-ds", asset_id="a1", label={})
    assert run["status"] == "succeeded", server.logs(run_id=run["id"])
    pins = DATASCIENCE_PINS
    # cv2.__version__ leaves out the wheel's build number (5.0.0.93 -> 5.0.0).
    cv2 = pins["opencv-python-headless"].rsplit(".", 1)[0]
    expected = [pins[n] for n in ("numpy", "pandas", "scikit-learn")]
    expected += [cv2, pins["pillow"], pins["requests"]]
    assert " ".join(expected) in [r["content"] for r in server.logs(run_id=run["id"])]


def test_an_unknown_flavor_is_refused_naming_the_allowed_ones(
    server: RunningServer, tmp_path: Path
) -> None:
    plugin = write_plugin(tmp_path, {"main.py": KILI_PLUGIN})
    before = plugin_names(server)
    response = upload(server, "unknown_flavor", plugin, runtime="gpu")
    assert response.status_code == 422
    assert response.json() == {
        "code": "unknown_runtime",
        "message": "runtime: unknown runtime 'gpu'; choose one of minimal, kili, datascience "
        "(GET /v1/runtimes lists their packages).",
        "field": "runtime",
        "allowed": ["minimal", "kili", "datascience"],
    }
    (tmp_path / "plugin.toml").write_text('\n\nruntime = "tensorflow"\n')
    response = upload(server, "unknown_flavor", plugin)
    assert response.status_code == 422
    assert response.json() == {
        "code": "unknown_runtime",
        "message": "plugin.toml: runtime: unknown runtime 'tensorflow'; choose one of minimal, "
        "kili, datascience (GET /v1/runtimes lists their packages).",
        "field": "plugin.toml: runtime",
        "allowed": ["minimal", "kili", "datascience"],
        "file": "plugin.toml",
        "line": 3,
    }
    assert plugin_names(server) == before


def test_requirements_are_refused_when_the_operator_forbids_them(
    strict: RunningServer, tmp_path: Path
) -> None:
    plugin = write_plugin(
        tmp_path, {"main.py": KILI_PLUGIN, "requirements.txt": "requests==2.31.0\n"}
    )
    response = upload(strict, "with_reqs", plugin)
    assert response.status_code == 422
    assert response.json() == {
        "code": "requirements_forbidden",
        "message": "The upload has a requirements.txt, and this executor installs no "
        "requirements (EXECUTOR_BUILD_ALLOW_REQUIREMENTS=false): remove it and use the "
        "packages of a runtime flavor (GET /v1/runtimes lists them).",
        "file": "requirements.txt",
    }
    assert plugin_names(strict) == []
    # Without the file, the same plugin builds on the flavor it names.
    (tmp_path / "requirements.txt").unlink()
    build = push(strict, "with_reqs", plugin, runtime="kili")
    assert build["status"] == "ACTIVE", build["log"]


def test_the_operator_default_flavor_applies_when_none_is_named(
    strict: RunningServer, tmp_path: Path
) -> None:
    plugin = write_plugin(
        tmp_path, {"main.py": "from plugin_runtime import PluginCore\n" + HANDLER}
    )
    build = push(strict, "plain", plugin)
    assert build["status"] == "ACTIVE", build["log"]
    (version,) = strict.api.get("/v1/plugins/plain").json()["versions"]
    assert version["runtime"] == "minimal"


def test_cli_push_runtime_and_versions_show_the_flavor(
    server: RunningServer, tmp_path: Path
) -> None:
    plugin = write_plugin(
        tmp_path, {"main.py": "from plugin_runtime import PluginCore\n" + HANDLER}
    )
    pushed = cli(server, "push", str(plugin), "--name", "cli_flavor", "--runtime", "minimal")
    assert "cli_flavor v1 is ACTIVE" in pushed.stdout
    versions = json.loads(cli(server, "versions", "cli_flavor", "--json").stdout)
    assert [v["runtime"] for v in versions] == ["minimal"]
    table = cli(server, "versions", "cli_flavor").stdout
    assert "minimal" in table
    refused = cli(server, "push", str(plugin), "--name", "cli_flavor", "--runtime", "gpu", ok=False)
    assert refused.returncode != 0
    assert "unknown runtime 'gpu'; choose one of minimal, kili, datascience" in refused.stderr
    listed = json.loads(cli(server, "runtimes", "--json").stdout)
    assert [f["name"] for f in listed] == ["minimal", "kili", "datascience"]


# --- item 2: the build proves the plugin imports


@pytest.mark.parametrize(
    ("files", "form", "error"),
    [
        pytest.param(
            {"main.py": KILI_PLUGIN},
            {"runtime": "minimal"},
            "the plugin cannot be imported: main.py, line 1: ModuleNotFoundError: No module "
            "named 'kili': add the package to requirements.txt or choose a runtime flavor that "
            "has it (GET /v1/runtimes) (traceback in the build log)",
            id="missing-module",
        ),
        pytest.param(
            {
                "main.py": "from .settings import LIMIT\n" + KILI_PLUGIN,
                "settings.py": '"""Settings."""\n\nraise RuntimeError("no config file")\n',
            },
            {},
            "the plugin cannot be imported: settings.py, line 3: RuntimeError: no config file "
            "(traceback in the build log)",
            id="exception-in-a-module",
        ),
        pytest.param(
            {
                "main.py": "from helpers import rule\n" + KILI_PLUGIN,
                "helpers.py": 'exec(compile("def rule(:\\n", "rules.py", "exec"))\n',
            },
            {},
            "the plugin cannot be imported: helpers.py, line 1: SyntaxError: invalid syntax "
            "(traceback in the build log)",
            id="syntax-error",
        ),
        pytest.param(
            {"main.py": KILI_PLUGIN + "\ndel PluginHandler\n"},
            {},
            "main.py defines no class PluginHandler once imported (it is deleted or replaced "
            "at module level): keep a class PluginHandler in main.py",
            id="no-plugin-handler",
        ),
    ],
)
def test_a_plugin_that_cannot_be_imported_fails_its_build(
    server: RunningServer,
    tmp_path: Path,
    files: dict[str, str],
    form: dict[str, str],
    error: str,
    request: pytest.FixtureRequest,
) -> None:
    name = "noimport_" + request.node.callspec.id.replace("-", "_")
    build = push(server, name, write_plugin(tmp_path, files), **form)
    assert build["status"] == "FAILED"
    assert build["error"] == error
    assert "==> Import check: loading main.py as a run will" in build["log"]
    assert re.search(r"\n==> Import check: .*: FAILED after [0-9.]+ s\n", build["log"])
    assert build["log"].endswith(f"\nBUILD FAILED: {error}\n")
    (version,) = server.api.get(f"/v1/plugins/{name}").json()["versions"]
    assert (version["status"], version["image_id"]) == ("FAILED", None)


def test_the_build_log_holds_the_traceback(server: RunningServer, tmp_path: Path) -> None:
    files = {
        "main.py": "from .settings import LIMIT\n" + KILI_PLUGIN,
        "settings.py": "import json\n\nLIMIT = json.loads('{')\n",
    }
    build = push(server, "traceback_log", write_plugin(tmp_path, files))
    assert build["status"] == "FAILED"
    log = build["log"]
    assert 'File "/opt/plugin/plugin_code/main.py", line 1, in <module>' in log
    assert 'File "/opt/plugin/plugin_code/settings.py", line 3, in <module>' in log
    assert "json.decoder.JSONDecodeError: Expecting property name enclosed in double quotes" in log
    assert build["error"].startswith("the plugin cannot be imported: settings.py, line 3: ")


def test_an_import_that_hangs_fails_the_build_at_the_time_limit(
    hasty: RunningServer, tmp_path: Path
) -> None:
    files = {"main.py": "import threading\nthreading.Event().wait()\n" + KILI_PLUGIN}
    build = push(hasty, "hangs", write_plugin(tmp_path, files))
    assert build["status"] == "FAILED"
    assert build["error"] == (
        "importing main.py did not finish within 1 s (EXECUTOR_BUILD_IMPORT_TIMEOUT_S): move "
        "slow work from module level into the handler"
    )


def test_an_unresolved_import_is_a_warning_in_the_build_log(
    server: RunningServer, tmp_path: Path
) -> None:
    files = {
        "main.py": "import json\nimport requests\nfrom .rules import check\n"
        "try:\n    import yaml_fast\nexcept ImportError:\n    yaml_fast = None\n" + KILI_PLUGIN,
        "rules.py": "def check():\n    import never_imported_here\n",
    }
    build = push(server, "warns", write_plugin(tmp_path, files))
    assert build["status"] == "ACTIVE", build["log"]
    warnings = [line for line in build["log"].splitlines() if line.startswith("WARNING")]
    assert warnings == [
        "WARNING: main.py, line 5: 'import yaml_fast': yaml_fast is not in the standard "
        "library, the plugin, the 'kili' runtime flavor or the packages requirements.txt "
        "installed; add its package to requirements.txt or choose a flavor that has it"
    ]


def test_an_import_named_unlike_its_distribution_resolves_by_what_was_installed(
    server: RunningServer, tmp_path: Path
) -> None:
    """``dateutil`` comes from ``python-dateutil`` and ``yaml`` from ``PyYAML``: the image
    says so once they are installed (issue 26, item 9). The minimal flavor has neither."""
    files = {
        "main.py": "from dateutil import parser\nimport yaml\nimport six\n"
        "try:\n    import toml_nowhere\nexcept ImportError:\n    toml_nowhere = None\n"
        "class PluginHandler:\n    def on_submit(self, label, asset_id):\n        pass\n",
        "requirements.txt": "python-dateutil==2.9.0.post0\nPyYAML==6.0.2\n",
    }
    build = push(server, "dateutil_user", write_plugin(tmp_path, files), runtime="minimal")
    assert build["status"] == "ACTIVE", build["log"]
    warnings = [line for line in build["log"].splitlines() if line.startswith("WARNING")]
    assert warnings == [
        "WARNING: main.py, line 5: 'import toml_nowhere': toml_nowhere is not in the standard "
        "library, the plugin, the 'minimal' runtime flavor or the packages requirements.txt "
        "installed; add its package to requirements.txt or choose a flavor that has it"
    ]
    # The warnings come once the requirements are in the image, before its import check.
    log = build["log"]
    assert log.index("==> Installing requirements.txt (pip): done in ") < log.index("WARNING")
    assert log.index("WARNING") < log.index("==> Import check: ")


def test_a_flavor_image_missing_from_the_engine_fails_the_build_saying_so(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    bare = server_factory(runtime_image="pe-no-such-runtime:wt-test")
    build = push(bare, "unbuilt", write_plugin(tmp_path, {"main.py": KILI_PLUGIN}))
    assert build["status"] == "FAILED"
    assert build["error"] == (
        "the image of runtime flavor 'kili', pe-no-such-runtime-kili:wt-test, is not on the "
        "Docker Engine: the operator builds it with deploy/build-flavor-images.sh "
        "(deploy/setup.sh does)"
    )
    runtimes = bare.api.get("/v1/runtimes").json()
    assert [(f["name"], f["available"], f["packages"]) for f in runtimes] == [
        ("minimal", False, {}),
        ("kili", False, {}),
        ("datascience", False, {}),
    ]
