"""Runs attacks as small real plugins on a real executor, and looks at what they left.

Each attack is the source of a function ``attack(plugin, label, emit)`` run inside the
plugin's ``on_submit``; ``emit(key, value)`` prints one ``REPORT`` line at once (so a run
that ends killed still tells what it saw). One plugin (and one image) per attack, one
fresh container per run.
"""

from __future__ import annotations

import json
import re
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker

from executor.engine import INVOCATION_LABEL
from tests.conftest import RunningServer

# Short wall time so the attacks that must be killed end quickly; gVisor's ptrace platform
# starts and forks processes several times slower, so its runs get more.
TIMEOUT_S = {"runc": 8.0, "runsc": 15.0}
RUNTIMES = tuple(TIMEOUT_S)
# /dev/shm of the attacked executors: not the default (64), so tests see the setting applied.
SHM_MIB = 96
REPORT = "REPORT "

PLUGIN_TEMPLATE = """\
import errno
import json
import os
import socket
import sys
import time

from plugin_runtime import PluginCore

MIB = 1024 * 1024


def emit(key, value):
    print("{report}" + json.dumps({{key: value}}), flush=True)


{body}


class PluginHandler(PluginCore):
    def on_submit(self, label, asset_id):
        attack(self, label or {{}}, emit)
"""


@dataclass
class AttackRun:
    """One run of an attack plugin: the invocation, its logs, and what the plugin reported."""

    run: dict[str, Any]
    logs: list[dict[str, Any]]
    report: dict[str, Any] = field(default_factory=dict)

    @property
    def text(self) -> str:
        """The run's status, error and log lines, for assertion messages."""
        lines = [f"{r['log_type']}: {r['content']}" for r in self.logs]
        return "\n".join([f"status={self.run['status']} error={self.run['error']}", *lines])

    @property
    def system_lines(self) -> list[str]:
        return [r["content"] for r in self.logs if r["log_type"] == "SYSTEM"]


def parse_report(logs: list[dict[str, Any]]) -> dict[str, Any]:
    report: dict[str, Any] = {}
    for record in logs:
        content = record["content"]
        if content.startswith(REPORT):
            report.update(json.loads(content[len(REPORT) :]))
    return report


class Attacker:
    """Pushes attack plugins to one server and runs them."""

    def __init__(self, server: RunningServer, workdir: Path) -> None:
        self.server = server
        self.workdir = workdir
        self.pushed: set[str] = set()
        self.runtime = server.settings.sandbox.oci_runtime
        self.timeout_s = server.settings.sandbox.timeout_s

    def push(self, name: str, body: str, limits: dict[str, Any] | None = None) -> None:
        if name in self.pushed:
            return
        folder = self.workdir / name
        folder.mkdir(parents=True)
        source = PLUGIN_TEMPLATE.format(report=REPORT, body=textwrap.dedent(body).strip())
        (folder / "main.py").write_text(source)
        self.server.push(folder, name)
        if limits:
            response = self.server.api.put(f"/v1/plugins/{name}/limits", json=limits)
            assert response.status_code == 200, response.text
        self.server.activate(name, name)
        self.pushed.add(name)

    def start(
        self,
        name: str,
        body: str,
        *,
        label: dict[str, Any] | None = None,
        limits: dict[str, Any] | None = None,
    ) -> str:
        """Push the attack (once) and post one event: the invocation id."""
        self.push(name, body, limits)
        accepted = self.server.post_event(
            type="onSubmit", project_id=name, asset_id="asset-1", label=label or {}
        )
        assert len(accepted["invocations"]) == 1, accepted
        return str(accepted["invocations"][0])

    def finish(self, invocation_id: str) -> AttackRun:
        run = self.server.wait_run(invocation_id, timeout=self.timeout_s * 6 + 60)
        logs = self.server.logs(run_id=invocation_id)
        return AttackRun(run, logs, parse_report(logs))

    def run(
        self,
        name: str,
        body: str,
        *,
        label: dict[str, Any] | None = None,
        limits: dict[str, Any] | None = None,
    ) -> AttackRun:
        """Run the attack once, to its end."""
        return self.finish(self.start(name, body, label=label, limits=limits))

    def wait_report(self, invocation_id: str, key: str, timeout: float = 60) -> dict[str, Any]:
        """What the plugin reported so far, once ``key`` is in it (the run still going)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            report = parse_report(self.server.logs(run_id=invocation_id))
            if key in report:
                return report
            time.sleep(0.1)
        raise AssertionError(f"the plugin did not report {key!r} within {timeout} s")


def running_container(client: docker.DockerClient, invocation_id: str) -> dict[str, Any]:
    """The inspect output of the container running ``invocation_id``."""
    found = client.api.containers(filters={"label": f"{INVOCATION_LABEL}={invocation_id}"})
    assert len(found) == 1, f"expected one container for {invocation_id}, found {found}"
    return dict(client.api.inspect_container(found[0]["Id"]))


def containers_of(client: docker.DockerClient, invocation_id: str) -> list[dict[str, Any]]:
    """Every container (running or not) left for ``invocation_id``."""
    return list(
        client.api.containers(all=True, filters={"label": f"{INVOCATION_LABEL}={invocation_id}"})
    )


def host_processes_of(container_prefix: str) -> list[int]:
    """Host pids whose cgroup belongs to the container whose id starts with the prefix."""
    pattern = re.compile(rf"docker[-/]{re.escape(container_prefix)}")
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cgroup = (proc / "cgroup").read_text()
        except OSError:
            continue
        if pattern.search(cgroup):
            pids.append(int(proc.name))
    return pids


def host_process_count() -> int:
    return sum(1 for proc in Path("/proc").iterdir() if proc.name.isdigit())


def volumes_mounted_by(invocation_id: str, since: float) -> set[str]:
    """The volumes Docker mounted into a container of ``invocation_id`` since ``since``.

    Read from the Engine's events, not from a diff of all its volumes: tests on other
    workers create volumes of their own meanwhile (the compose cluster's database).
    """
    client = docker.from_env()
    start, end = int(since), int(time.time()) + 1
    try:
        created = client.events(
            filters={
                "type": "container",
                "event": "create",
                "label": f"{INVOCATION_LABEL}={invocation_id}",
            },
            since=start,
            until=end,
            decode=True,
        )
        containers = {event["Actor"]["ID"] for event in created}
        assert containers, f"the Engine reported no container created for {invocation_id}"
        mounts = client.events(
            filters={"type": "volume", "event": "mount"}, since=start, until=end, decode=True
        )
        return {
            event["Actor"]["ID"]
            for event in mounts
            if event["Actor"]["Attributes"].get("container") in containers
        }
    finally:
        client.close()
