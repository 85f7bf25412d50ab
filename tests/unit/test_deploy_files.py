"""The deployment files stay true to the code: compose settings exist, the settings
reference in docs/operating.md is current, the systemd unit verifies."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from examples.labeling_platform import PlatformSettings
from executor.settings import SandboxProfile, Settings

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"


def env_names() -> set[str]:
    names = {f"EXECUTOR_{name.upper()}" for name in Settings.model_fields if name != "sandbox"}
    names |= {f"EXECUTOR_SANDBOX_{name.upper()}" for name in SandboxProfile.model_fields}
    return names


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
