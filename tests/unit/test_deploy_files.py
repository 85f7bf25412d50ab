"""The deployment files stay true to the code: compose settings exist, the settings
reference in docs/operating.md is current, the systemd units verify."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from examples.labeling_platform import PlatformSettings
from executor.settings import variables

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"


def env_names() -> set[str]:
    return set(variables())


def compose() -> dict[str, object]:
    return dict(yaml.safe_load((DEPLOY / "compose.yaml").read_text()))


def test_compose_runs_executor_postgres_and_platform() -> None:
    services = compose()["services"]
    assert isinstance(services, dict)
    assert set(services) == {"executor", "postgres", "platform"}
    executor_env = services["executor"]["environment"]
    assert executor_env["EXECUTOR_DATABASE_URL"].startswith("postgresql+psycopg://")
    assert set(executor_env) <= env_names(), set(executor_env) - env_names()
    platform_env = services["platform"]["environment"]
    platform_names = {f"PLATFORM_{name.upper()}" for name in PlatformSettings.model_fields}
    assert set(platform_env) <= platform_names, set(platform_env) - platform_names
    # The data folder is mounted at the same path inside and out (gateway socket).
    assert "/var/lib/plugin-executor:/var/lib/plugin-executor" in services["executor"]["volumes"]
    assert "/var/run/docker.sock:/var/run/docker.sock" in services["executor"]["volumes"]


def test_every_required_compose_variable_is_in_the_env_example() -> None:
    text = (DEPLOY / "compose.yaml").read_text()
    required = set(re.findall(r"\$\{([A-Z_]+):\?", text))
    example = (DEPLOY / "compose.env.example").read_text()
    listed = set(re.findall(r"^#? ?([A-Z_]+)=", example, re.MULTILINE))
    assert required, "compose.yaml names no required variable?"
    assert required <= listed, required - listed


def test_settings_reference_is_current() -> None:
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "settings_reference.py"), "--check"],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stderr
    doc = (REPO / "docs" / "operating.md").read_text()
    for name in sorted(env_names()):
        assert f"`{name}`" in doc, name


def test_systemd_unit_verifies(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze is missing: apt-get install systemd"
    # The unit names /opt/plugin-executor; point it at this checkout to verify it here.
    unit = (
        (DEPLOY / "plugin-executor.service").read_text().replace("/opt/plugin-executor", str(REPO))
    )
    (tmp_path / "plugin-executor.service").write_text(unit)
    result = subprocess.run(
        [analyze, "verify", str(tmp_path / "plugin-executor.service")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert "plugin-executor.service" not in result.stderr, result.stderr


CLUSTER_UNITS = ("plugin-executor-worker.service", "plugin-executor-api.service")


def cluster_compose() -> dict[str, Any]:
    return dict(yaml.safe_load((DEPLOY / "compose.cluster.yaml").read_text()))


@pytest.mark.parametrize("name", CLUSTER_UNITS)
def test_cluster_units_verify(name: str, tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze is missing: apt-get install systemd"
    text = (DEPLOY / "systemd" / name).read_text().replace("/opt/plugin-executor", str(REPO))
    (tmp_path / name).write_text(text)
    result = subprocess.run(
        [analyze, "verify", str(tmp_path / name)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert name not in result.stderr, result.stderr


def unit_options(name: str) -> dict[str, list[str]]:
    options: dict[str, list[str]] = {}
    for line in (DEPLOY / "systemd" / name).read_text().splitlines():
        key, equals, value = line.partition("=")
        if equals and not line.startswith("#"):
            options.setdefault(key, []).append(value)
    return options


def test_the_worker_unit_reaches_the_engine_socket_and_nothing_more() -> None:
    options = unit_options("plugin-executor-worker.service")
    assert options["ExecStart"] == ["/opt/plugin-executor/.venv/bin/plugin-executor worker"]
    assert options["EnvironmentFile"] == ["/etc/plugin-executor/worker.env"]
    assert options["SupplementaryGroups"] == ["docker"]  # the engine socket's group
    assert options["RestrictAddressFamilies"] == ["AF_UNIX AF_INET AF_INET6"]
    assert options["CapabilityBoundingSet"] == [""]
    for hardening in ("NoNewPrivileges", "ProtectHome", "PrivateDevices", "RestrictNamespaces"):
        assert options[hardening] == ["yes"], hardening
    assert options["ProtectSystem"] == ["strict"]
    api = unit_options("plugin-executor-api.service")
    assert api["ExecStart"] == [
        "/opt/plugin-executor/.venv/bin/plugin-executor serve --no-dispatch"
    ]


def test_the_worker_env_example_names_only_settings() -> None:
    text = (DEPLOY / "systemd" / "worker.env.example").read_text()
    names = set(re.findall(r"^#? ?([A-Z_]+)=", text, re.MULTILINE))
    assert {"EXECUTOR_NODE_ID", "EXECUTOR_DATABASE_URL", "EXECUTOR_REGISTRY"} <= names
    assert names <= env_names(), names - env_names()


def test_the_cluster_compose_runs_two_apis_behind_a_balancer_and_two_workers() -> None:
    services = cluster_compose()["services"]
    assert set(services) == {
        "api",
        "api-2",
        "balancer",
        "worker-1",
        "worker-2",
        "postgres",
        "registry",
    }
    apis = [services[name]["environment"] for name in ("api", "api-2")]
    for name in ("api", "api-2"):
        assert services[name]["command"] == ["serve", "--no-dispatch"]
    # Each its own node, data folder and port; both hand out the balancer's address.
    for setting in ("EXECUTOR_NODE_ID", "EXECUTOR_DATA_DIR", "EXECUTOR_PORT"):
        assert apis[0][setting] != apis[1][setting], setting
    assert apis[0]["EXECUTOR_PUBLIC_URL"] == apis[1]["EXECUTOR_PUBLIC_URL"]
    balancer = services["balancer"]["environment"]
    assert balancer["BALANCER_PORT"] == "${EXECUTOR_PORT:-8700}"
    assert {balancer["API_1_ADDRESS"], balancer["API_2_ADDRESS"]} == {
        f"127.0.0.1:{api['EXECUTOR_PORT']}" for api in apis
    }
    node_ids = set()
    for worker in ("worker-1", "worker-2"):
        service = services[worker]
        assert service["command"] == ["worker"]
        assert "ports" not in service
        env = service["environment"]
        assert set(env) <= env_names(), set(env) - env_names()
        node_ids.add(env["EXECUTOR_NODE_ID"])
        # The executor's own container reaches the engine; the data folder (gateway
        # socket) has the same path inside and out.
        assert "/var/run/docker.sock:/var/run/docker.sock" in service["volumes"]
        data_dir = env["EXECUTOR_DATA_DIR"]
        assert f"{data_dir}:{data_dir}" in service["volumes"]
    assert len(node_ids) == 2, "each worker needs its own EXECUTOR_NODE_ID"
    for name in ("postgres", "registry", "balancer"):
        assert "docker.sock" not in str(services[name].get("volumes", [])), name


def test_every_cluster_compose_variable_is_in_its_env_example() -> None:
    text = (DEPLOY / "compose.cluster.yaml").read_text()
    variables = set(re.findall(r"\$\{([A-Z0-9_]+)[:}-]", text))
    example = (DEPLOY / "compose.cluster.env.example").read_text()
    listed = set(re.findall(r"^#? ?([A-Z0-9_]+)=", example, re.MULTILINE))
    assert variables <= listed, variables - listed


def locked_versions() -> dict[str, str]:
    """deploy/requirements.lock as {canonical name: version}."""
    from packaging.utils import canonicalize_name

    pins: dict[str, str] = {}
    for line in (DEPLOY / "requirements.lock").read_text().splitlines():
        if line and not line.startswith((" ", "#")):
            name, _, version = line.partition("==")
            pins[canonicalize_name(name.split("[")[0])] = version
    return pins


def test_the_lock_pins_every_declared_dependency_within_its_range() -> None:
    """deploy/setup.sh installs the lock, then the package with --no-deps: a dependency added
    to pyproject.toml without compiling the lock again would be missing from every venv."""
    import tomllib

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    declared = [*project["dependencies"], *project["optional-dependencies"]["dev"]]
    pins = locked_versions()
    for text in declared:
        requirement = Requirement(text)
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{name} is declared but not in deploy/requirements.lock"
        assert requirement.specifier.contains(pins[name], prereleases=True), (name, pins[name])
