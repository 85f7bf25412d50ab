"""The sandbox profile: per-plugin limits only tighten, the container config is hardened."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from executor.errors import LimitExceeded
from executor.run.limits import LIMIT_FIELDS, PluginLimits, check_limits, effective_profile
from executor.sandbox.profile import INIT_COMMAND, container_config
from executor.settings import SandboxProfile

REPO = Path(__file__).resolve().parents[2]


def test_default_profile_is_the_design_profile() -> None:
    profile = SandboxProfile()
    assert (profile.memory_mib, profile.cpus, profile.pids, profile.timeout_s) == (512, 1, 128, 60)
    assert (profile.tmpfs_mib, profile.nofile, profile.user) == (64, 1024, "10000:10000")
    assert profile.log_cap_bytes == 1024 * 1024
    assert profile.envelope_cap_bytes == 5 * 1024 * 1024
    assert profile.oci_runtime == "runc"
    assert profile.shm_mib == 64


def test_dev_shm_size_is_a_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXECUTOR_SANDBOX_SHM_MIB", "96")
    assert container_config(SandboxProfile())["shm_size"] == 96 * 1024 * 1024


def test_container_config_is_hardened() -> None:
    config = container_config(SandboxProfile())
    assert config["mem_limit"] == config["memswap_limit"] == 512 * 1024 * 1024
    assert config["cap_drop"] == ["ALL"]
    assert config["security_opt"] == ["no-new-privileges:true"]  # seccomp: Docker's default
    assert config["read_only"] is True
    assert config["network_mode"] == "none"
    assert config["privileged"] is False
    assert config["tmpfs"] == {"/tmp": "rw,noexec,nosuid,nodev,size=64m,mode=1777"}
    assert config["shm_size"] == 64 * 1024 * 1024
    assert config["binds"] == {}  # the gateway socket folder only, when there is one
    assert "mounts" not in config and "devices" not in config
    assert INIT_COMMAND[:4] == ["python3", "-I", "-S", "-c"]
    # The engine keeps a capped copy of the output in its own data root, not a host path.
    assert config["log_config"] == {
        "Type": "local",
        "Config": {"max-size": str(2 * 1024 * 1024), "max-file": "2", "compress": "false"},
    }


def test_the_engine_copy_of_the_output_must_hold_the_log_cap() -> None:
    with pytest.raises(ValidationError) as caught:
        SandboxProfile(log_cap_bytes=4 * 1024 * 1024)
    assert "engine_log_max_bytes=4194304 is below 2 x (log_cap_bytes + 65536) = 8519680" in str(
        caught.value
    )
    assert "EXECUTOR_SANDBOX_ENGINE_LOG_MAX_BYTES to at least 8519680" in str(caught.value)
    profile = SandboxProfile(log_cap_bytes=4 * 1024 * 1024, engine_log_max_bytes=8519680)
    assert container_config(profile)["log_config"]["Config"]["max-size"] == "4259840"


@pytest.mark.parametrize("user", ["0", "0:0", "10000:0", "root", "root:root", ""])
def test_root_or_named_user_is_refused(user: str) -> None:
    with pytest.raises(ValidationError, match="user"):
        SandboxProfile(user=user)


def test_overrides_within_maxima_tighten_the_profile() -> None:
    profile = SandboxProfile()
    limits = check_limits(PluginLimits(memory_mib=128, timeout_s=5, pids=512 // 4), profile)
    tightened = effective_profile(profile, limits.model_dump(exclude_none=True))
    assert (tightened.memory_mib, tightened.timeout_s, tightened.pids) == (128, 5, 128)
    assert tightened.cpus == profile.cpus and tightened.user == profile.user


@pytest.mark.parametrize(
    ("field", "value", "maximum"),
    [
        ("memory_mib", 513, "512"),
        ("cpus", 1.5, "1"),
        ("pids", 129, "128"),
        ("timeout_s", 61, "60"),
        ("tmpfs_mib", 65, "64"),
        ("nofile", 1025, "1024"),
        ("log_cap_bytes", 2 * 1024 * 1024, "1048576"),
        ("envelope_cap_bytes", 6 * 1024 * 1024, "5242880"),
    ],
)
def test_override_above_maximum_is_refused(field: str, value: float, maximum: str) -> None:
    with pytest.raises(LimitExceeded) as caught:
        check_limits(PluginLimits(**{field: value}), SandboxProfile())
    assert caught.value.field == field
    assert caught.value.to_dict()["maximum"] == float(maximum)
    shown = str(int(value)) if float(value).is_integer() else str(value)
    assert caught.value.message.startswith(f"{field}={shown} is above the operator's maximum")
    assert f"of {maximum}: ask for at most {maximum}" in caught.value.message


def test_every_limit_field_is_overridable() -> None:
    assert set(PluginLimits.model_fields) == set(LIMIT_FIELDS)


def test_stored_override_above_a_lowered_maximum_is_clamped() -> None:
    assert effective_profile(SandboxProfile(memory_mib=256), {"memory_mib": 400}).memory_mib == 256


def test_register_runsc_merges_into_daemon_json(tmp_path: Path) -> None:
    daemon = tmp_path / "daemon.json"
    daemon.write_text(json.dumps({"log-level": "warn", "runtimes": {"other": {"path": "x"}}}))
    script = REPO / "deploy" / "register-runsc.py"
    first = subprocess.run([sys.executable, script, "/usr/bin/runsc", daemon], check=False)
    second = subprocess.run([sys.executable, script, "/usr/bin/runsc", daemon], check=False)
    assert (first.returncode, second.returncode) == (0, 1)
    assert json.loads(daemon.read_text()) == {
        "log-level": "warn",
        "runtimes": {
            "other": {"path": "x"},
            "runsc": {
                "path": "/usr/bin/runsc",
                "runtimeArgs": ["--network=none", "--host-uds=open"],
            },
        },
    }


def test_register_runsc_refuses_a_broken_daemon_json(tmp_path: Path) -> None:
    daemon = tmp_path / "daemon.json"
    daemon.write_text("{not json")
    script = REPO / "deploy" / "register-runsc.py"
    done = subprocess.run(
        [sys.executable, script, "/usr/bin/runsc", daemon], capture_output=True, text=True
    )
    assert done.returncode == 2
    assert "fix /etc/docker/daemon.json" in done.stderr
    assert daemon.read_text() == "{not json"
