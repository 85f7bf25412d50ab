"""Resource attacks: fork bomb, memory bomb, CPU spin, ignored SIGTERM, daemons, zombies,
stdout flood. Each ends as the sandbox profile says, in time, leaving nothing behind."""

from __future__ import annotations

import re
import time
from datetime import datetime
from pathlib import Path

import pytest

from tests.security.attacks import (
    Attacker,
    AttackRun,
    containers_of,
    host_process_count,
    host_processes_of,
    volumes_mounted_by,
)

# Slack on top of the wall time: container start, the kill, removal, status polling.
END_SLACK_S = 2.0
MIB = 1024 * 1024


def assert_ended_in_time(attacker: Attacker, result: AttackRun) -> None:
    """The run ended at most END_SLACK_S after the deadline (counted from handler start)."""
    run = result.run
    timeout_s = attacker.timeout_s
    started = datetime.fromisoformat(run["handler_started_at"])
    finished = datetime.fromisoformat(run["finished_at"])
    ended_after_s = (finished - started).total_seconds()
    timings = {k: run[k] for k in ("started_at", "handler_started_at", "finished_at")}
    assert ended_after_s <= timeout_s + END_SLACK_S, timings


def assert_timed_out_in_time(attacker: Attacker, result: AttackRun) -> None:
    run = result.run
    assert run["status"] == "timed_out", "\n".join(r["content"] for r in result.logs)
    assert run["error"] == f"wall time of {attacker.timeout_s:g} s exceeded: killed"
    assert_ended_in_time(attacker, result)
    assert f"run ended timed_out: {run['error']}" in result.system_lines


def assert_nothing_left(attacker: Attacker, result: AttackRun) -> None:
    """No container for the run, and no host process in its cgroup."""
    assert containers_of(attacker.server.docker_client, result.run["id"]) == []
    hostname = result.report["hostname"]
    assert re.fullmatch(r"[0-9a-f]{12}", hostname), hostname
    assert host_processes_of(hostname) == []


HOSTNAME = 'emit("hostname", socket.gethostname())'

# Every attack but the memory bomb (which needs a memory limit of its own) is a function of
# one plugin, chosen by the event's label: one image per executor instead of seven. Each run
# is still a fresh container.
ATTACKS = f"""
import signal


def fork_bomb(plugin, label, emit):
    {HOSTNAME}
    forks = 0
    try:
        while True:
            if os.fork() == 0:
                while True:
                    try:
                        os.fork()
                    except OSError:
                        time.sleep(0.01)
            forks += 1
    except OSError as exc:
        emit("fork_error", errno.errorcode[exc.errno])
        emit("forks", forks)
    time.sleep(3600)


def busy_loop(plugin, label, emit):
    {HOSTNAME}
    while True:
        pass


def cpu_spin(plugin, label, emit):
    {HOSTNAME}
    for _ in range(3):
        if os.fork() == 0:
            while True:
                pass
    while True:
        pass


def ignores_sigterm(plugin, label, emit):
    {HOSTNAME}
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if os.fork() == 0:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        while True:
            time.sleep(1)
    os.kill(1, signal.SIGTERM)
    emit("ignoring", True)
    while True:
        time.sleep(1)


def daemon(plugin, label, emit):
    {HOSTNAME}
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            while True:
                time.sleep(1)
        os._exit(0)
    os.wait()
    emit("daemon_started", True)


def zombies(plugin, label, emit):
    {HOSTNAME}
    for _ in range(10):
        if os.fork() == 0:
            os._exit(0)
    time.sleep(0.5)
    zombies = 0
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open(f"/proc/{{pid}}/stat") as stat:
                    zombies += stat.read().rsplit(")", 1)[1].split()[0] == "Z"
            except OSError:
                pass
    emit("zombies", zombies)


def flood(plugin, label, emit):
    line = b"x" * 1023 + b"\\n"
    chunk = line * 1024
    for _ in range(100):
        os.write(1, chunk)
    emit("flooded", True)


def attack(plugin, label, emit):
    globals()[label["attack"]](plugin, label, emit)
"""
ATTACKS_PLUGIN = "resource-attacks"
# The attacks that sit out the whole wall time and need at most one core between them run
# behind the others: started with the module's first test, read by their own test.
BACKGROUND = {"test_sigterm_ignored": "ignores_sigterm", "test_while_true_pass": "busy_loop"}
# The background attacks and the one in the foreground run at once.
MAX_CONCURRENT_RUNS = 4


def start_attack(attacker: Attacker, name: str) -> str:
    """Post one event for the attack function ``name``: the invocation id."""
    return attacker.start(ATTACKS_PLUGIN, ATTACKS, label={"attack": name})


def run_attack(attacker: Attacker, name: str) -> AttackRun:
    """Run the attack function ``name`` once, to its end."""
    return attacker.finish(start_attack(attacker, name))


@pytest.fixture(scope="module", autouse=True)
def background(attacker: Attacker, request: pytest.FixtureRequest) -> dict[str, str]:
    """The invocation ids of the BACKGROUND attacks whose tests were selected, by test."""
    selected = {
        item.originalname
        for item in request.session.items
        if isinstance(item, pytest.Function) and item.module is request.module
    }
    return {
        test: start_attack(attacker, name) for test, name in BACKGROUND.items() if test in selected
    }


def test_memory_bomb(attacker: Attacker) -> None:
    """Attack: memory bomb (allocate and touch memory without end). The OOM killer ends the
    run, reported as oom_killed from the engine's OOM flag."""
    result = attacker.run(
        "memory-bomb",
        """
        def attack(plugin, label, emit):
            blocks = []
            while True:
                blocks.append(b"\\x01" * (8 * MIB))
                emit("allocated_mib", 8 * len(blocks))
        """,
        limits={"memory_mib": 64},
    )
    assert result.run["status"] == "oom_killed", result.run
    assert result.run["error"] == "memory limit of 64 MiB exceeded"
    assert result.report["allocated_mib"] <= 64


def test_double_fork_daemon(attacker: Attacker) -> None:
    """Attack: a background daemon (double fork, new session) that outlives the handler.
    The run succeeds, and the daemon dies with the container."""
    result = run_attack(attacker, "daemon")
    assert result.run["status"] == "succeeded", (result.run, [r["content"] for r in result.logs])
    assert result.report["daemon_started"] is True
    assert_nothing_left(attacker, result)


def test_zombies(attacker: Attacker) -> None:
    """Attack: leave zombies (children that exit and are never waited for)."""
    since = time.time()
    result = run_attack(attacker, "zombies")
    assert result.run["status"] == "succeeded", (result.run, [r["content"] for r in result.logs])
    assert result.report["zombies"] == 10
    assert_nothing_left(attacker, result)
    assert volumes_mounted_by(result.run["id"], since) == set()


def rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS in /proc/self/status")


def test_stdout_flood(attacker: Attacker) -> None:
    """Attack: flood stdout with 100 MiB. Kept up to the 1 MiB cap, then one SYSTEM line says
    how much was dropped and the run stops as failed (log_limit); the executor's memory
    (this process runs it) stays bounded."""
    before = rss_bytes()
    result = run_attack(attacker, "flood")
    grown = rss_bytes() - before
    cap = attacker.server.settings.sandbox.log_cap_bytes
    run = result.run
    assert run["status"] == "failed", run
    assert run["error"] == f"log_limit: more than {cap} bytes of output; run stopped"
    assert run["truncated"] is True
    assert "flooded" not in result.report  # stopped before the plugin got through
    truncation = [line for line in result.system_lines if line.startswith("log output truncated")]
    assert len(truncation) == 1, result.system_lines
    assert re.fullmatch(
        rf"log output truncated at {cap} bytes: \d+ more bytes were dropped", truncation[0]
    )
    kept = sum(len(r["content"]) + 1 for r in result.logs if r["log_type"] != "SYSTEM")
    assert kept <= cap
    assert run["log_bytes"] < 100 * MIB
    assert grown < 64 * MIB, f"executor RSS grew by {grown} bytes"


# The attacks killed at the deadline come last: the background ones have ended by then.
def test_while_true_pass(attacker: Attacker, background: dict[str, str]) -> None:
    """Attack: ``while True: pass`` in the handler. Killed at the deadline (+2 s at most)."""
    result = attacker.finish(background["test_while_true_pass"])
    assert_timed_out_in_time(attacker, result)
    assert_nothing_left(attacker, result)


def test_sigterm_ignored(attacker: Attacker, background: dict[str, str]) -> None:
    """Attack: ignore SIGTERM (and send it to pid 1) and sleep. SIGKILL ends it anyway."""
    result = attacker.finish(background["test_sigterm_ignored"])
    assert result.report["ignoring"] is True
    assert_timed_out_in_time(attacker, result)
    assert_nothing_left(attacker, result)


def test_fork_bomb(attacker: Attacker) -> None:
    """Attack: fork bomb (every process forks forever). The pids limit stops it, the run is
    killed at the deadline, and no process of it is left on the host."""
    before = host_process_count()
    result = run_attack(attacker, "fork_bomb")
    if attacker.runtime == "runc":
        assert_timed_out_in_time(attacker, result)
        assert result.report["fork_error"] == "EAGAIN"
        assert result.report["forks"] < attacker.server.settings.sandbox.pids
    else:
        # Under gVisor the pids limit also holds the Sentry's own host threads: when the bomb
        # reaches it the whole sandbox exits (exit code 2) before the deadline.
        assert result.run["status"] in ("failed", "timed_out"), result.run
        assert_ended_in_time(attacker, result)
    assert_nothing_left(attacker, result)
    # Other work on the machine moves the count a little; a leaked bomb would add hundreds.
    assert host_process_count() < before + 100


def test_cpu_spin_in_many_processes(attacker: Attacker) -> None:
    """Attack: CPU spin in 4 processes (more than the CPU quota). Killed at the deadline."""
    result = run_attack(attacker, "cpu_spin")
    assert_timed_out_in_time(attacker, result)
    assert_nothing_left(attacker, result)
