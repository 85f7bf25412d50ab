"""The upload check pool: bombs stop at a worker's limits, workers are replaced, tenants
share the pool. Real worker processes; decided on the pool's records, not on timings."""

from __future__ import annotations

import io
import os
import signal
import sys
import threading
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import asdict
from typing import cast

import pytest
from pydantic import ValidationError

from executor.errors import UploadCheckBusy, UploadCheckLimit, UploadTooLarge
from executor.intake.archive import write_tar_gz
from executor.intake.bytecode import compile_sources, pyc_path
from executor.intake.check_process import CheckWorker
from executor.intake.check_run import CheckOutcome, run_check
from executor.intake.check_wire import (
    CheckKind,
    CheckReply,
    CheckRequest,
    Unpacked,
    WorkerOutcome,
    write_frame,
)
from executor.intake.checker import BUILDS_TENANT, CheckerLimits, UploadChecker
from executor.intake.imports import scan_imports
from executor.intake.upload import UploadLimits, read_upload
from executor.settings import Settings

MIB = 1024 * 1024
MAIN = (
    b"from plugin_runtime import PluginCore\n"
    b"class PluginHandler(PluginCore):\n"
    b"    def on_submit(self, label, asset_id):\n"
    b"        pass\n"
)
# 4 MiB of one list literal: ast.parse needs some 2 GiB for it, 8x the workers' limit here.
BOMB = b"x = [" + b"1," * (2 * MIB) + b"]\n"
WORKER_MEMORY = 256 * MIB
ROOMY = UploadLimits(max_file_bytes=8 * MIB)  # lets the bomb past the per-file cap


def make_zip(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path, content in files.items():
            archive.writestr(path, content)
    return buffer.getvalue()


def peak_rss_reset() -> None:
    with open("/proc/self/clear_refs", "wb") as clear:
        clear.write(b"5")


def peak_rss() -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        line = next(line for line in status if line.startswith("VmHWM:"))
    return int(line.split()[1]) * 1024


@pytest.fixture
def checker() -> Iterator[UploadChecker]:
    pool = UploadChecker(CheckerLimits(workers=2, per_tenant=1, memory_bytes=WORKER_MEMORY))
    yield pool
    pool.close()


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def wait_for(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 60
    while not condition():
        assert time.monotonic() < deadline, "the pool never got there"
        time.sleep(0.01)


def zombie(pid: int) -> bool:
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        return stat.read().rsplit(")", 1)[1].split()[0] == "Z"


def test_a_checked_upload_comes_back_whole(checker: UploadChecker) -> None:
    data = make_zip({"main.py": MAIN, "data/labels.json": b"[]"})
    checked = checker.check("acme", "p.zip", data, UploadLimits())
    assert checked.result() == read_upload("p.zip", data)
    assert checked.unpacked_bytes == len(MAIN) + 2
    record = checker.records[-1]
    assert (record.outcome, record.replaced, record.tenant) == (CheckOutcome.CHECKED, False, "acme")


def test_a_bomb_stops_at_the_worker_memory_limit_not_in_this_process(
    checker: UploadChecker,
) -> None:
    data = make_zip({"main.py": BOMB})
    assert len(data) < 16 * 1024  # small on the wire
    peak_rss_reset()
    before = peak_rss()
    checked = checker.check("acme", "bomb.zip", data, ROOMY)
    error = checked.error
    assert error is not None
    assert error.to_dict() == {
        "code": "upload_check_limit",
        "message": "Checking the upload 'bomb.zip' at main.py needed more than 256 MiB of memory "
        "(EXECUTOR_UPLOAD_CHECK_MEMORY_BYTES) and was stopped: large literals in the code (long "
        "lists, dicts or strings) are the usual cause; move such data into a file the plugin "
        "reads at run time and upload again.",
        "file": "main.py",
        "limit": "EXECUTOR_UPLOAD_CHECK_MEMORY_BYTES",
        "maximum": WORKER_MEMORY,
    }
    assert error.status_code == 422
    record = checker.records[-1]
    assert record.outcome is CheckOutcome.MEMORY_LIMIT and record.replaced
    # The worker's own record: it got near its limit, never past it; it is gone.
    assert WORKER_MEMORY // 2 <= record.peak_rss_bytes <= WORKER_MEMORY
    assert record.unpacked_bytes == len(BOMB)
    assert not alive(record.worker_pid)
    # This process only held the upload and the unpacked copy it got back: nothing parsed.
    assert peak_rss() - before < 64 * MIB
    # The replacement checks the next upload.
    after = checker.check("acme", "p.zip", make_zip({"main.py": MAIN}), UploadLimits())
    assert after.result().handlers == ("onSubmit",)
    assert checker.records[-1].worker_pid != record.worker_pid


def test_a_source_file_over_the_cap_is_refused_before_parsing(checker: UploadChecker) -> None:
    checked = checker.check("acme", "bomb.zip", make_zip({"main.py": BOMB}), UploadLimits())
    assert isinstance(checked.error, UploadTooLarge)
    assert checked.error.status_code == 413
    assert checked.error.to_dict() == {
        "code": "upload_too_large",
        "message": f"main.py is {len(BOMB)} bytes, over the 1 MiB limit for one source file "
        "(EXECUTOR_UPLOAD_MAX_FILE_BYTES): move data out of the code (into a data file read at "
        "run time) or split the module, and upload again.",
        "file": "main.py",
        "limit": MIB,
    }
    record = checker.records[-1]
    assert record.outcome is CheckOutcome.REJECTED and not record.replaced
    assert record.peak_rss_bytes < WORKER_MEMORY // 4  # the bomb was never parsed


@pytest.mark.parametrize("path", ["qa/big.py", "plugin.toml", "requirements.txt"])
def test_every_parsed_file_is_capped(path: str) -> None:
    files = {"main.py": MAIN, path: b"#" * (1024 + 1)}
    with pytest.raises(UploadTooLarge) as refused:
        read_upload("p.zip", make_zip(files), UploadLimits(max_file_bytes=1024))
    assert refused.value.details == {"file": path, "limit": 1024}
    # A data file is not parsed: only the unpacked total bounds it.
    data = {"main.py": MAIN, "data.bin": b"#" * 4096}
    assert read_upload("p.zip", make_zip(data), UploadLimits(max_file_bytes=1024)).files


def test_a_check_past_the_time_limit_is_stopped_and_its_worker_replaced() -> None:
    # Any machine parses 2000 functions slower than a thousandth of a second.
    source = MAIN + b"".join(b"def f%d(a):\n    return [a, a + 1]\n" % n for n in range(2000))
    pool = UploadChecker(CheckerLimits(workers=1, per_tenant=1, timeout_s=0.001))
    try:
        checked = pool.check("acme", "slow.py", source, UploadLimits())
        assert checked.error is not None
        assert checked.error.details == {
            "file": "slow.py",
            "limit": "EXECUTOR_UPLOAD_CHECK_TIMEOUT_S",
            "maximum": 0.001,
        }
        record = pool.records[-1]
        assert record.outcome is CheckOutcome.TIME_LIMIT and record.replaced
        assert not alive(record.worker_pid)
    finally:
        pool.close()


def test_a_worker_that_ended_while_idle_is_not_blamed_on_the_next_upload(
    checker: UploadChecker,
) -> None:
    data = make_zip({"main.py": MAIN})
    checker.check("acme", "p.zip", data, UploadLimits())
    first = checker.records[-1].worker_pid
    os.kill(first, signal.SIGKILL)
    wait_for(lambda: zombie(first))
    checked = checker.check("acme", "p.zip", data, UploadLimits())
    assert checked.result().handlers == ("onSubmit",)
    assert checker.records[-1].worker_pid != first


def test_one_tenant_holds_at_most_its_share_and_queues_a_few() -> None:
    pool = UploadChecker(CheckerLimits(workers=2, per_tenant=1))
    granted: list[str] = []

    def queued_check(tenant: str) -> None:
        pool._acquire(tenant)
        granted.append(tenant)

    pool._acquire("bomber")  # its one share of the two workers
    waiting = [threading.Thread(target=queued_check, args=("bomber",)) for _ in range(2)]
    for thread in waiting:
        thread.start()
    wait_for(lambda: pool._queued["bomber"] == 2)
    with pytest.raises(UploadCheckBusy) as busy:
        pool._acquire("bomber")
    assert busy.value.to_dict() == {
        "code": "upload_check_busy",
        "message": "this tenant already has 3 uploads being checked or waiting: wait for their "
        "answers and retry",
        "retry_after_s": 30,
    }
    assert busy.value.status_code == 429
    # The other worker is the victim's at once, though the bomber has two waiting for it.
    pool._acquire("victim")
    pool._release("victim", None)
    assert granted == [] and pool._queued["bomber"] == 2
    pool._release("bomber", None)  # the bomber's next check runs, one at a time
    wait_for(lambda: granted == ["bomber"])
    assert pool._queued["bomber"] == 1
    pool._release("bomber", None)
    wait_for(lambda: granted == ["bomber", "bomber"])
    pool._release("bomber", None)
    for thread in waiting:
        thread.join()
    assert pool._busy == 0


def test_a_builds_scan_reads_and_compiles_the_stored_source_in_a_worker(
    checker: UploadChecker,
) -> None:
    files = {  # in the archive's order
        "lib/rules.py": b"import cv2\nassert (1, 'always')\n",
        "main.py": MAIN + b"import numpy\n",
    }
    scan = checker.scan_for_build(write_tar_gz(files))
    assert scan.imports == scan_imports(files)
    assert [(i.path, i.module, i.line) for i in scan.imports.imports] == [
        ("lib/rules.py", "cv2", 1),
        ("main.py", "plugin_runtime", 1),
        ("main.py", "numpy", 5),
    ]
    # What the worker compiled crossed the pipe whole.
    assert scan.bytecode == compile_sources(files)
    tag = sys.implementation.cache_tag
    assert sorted(scan.bytecode.files) == [
        f"__pycache__/main.{tag}.pyc",
        f"lib/__pycache__/rules.{tag}.pyc",
    ]
    assert scan.bytecode.warnings == (
        "lib/rules.py:2: SyntaxWarning: assertion is always true, perhaps remove parentheses?"
        "\n  assert (1, 'always')",
    )
    record = checker.records[-1]
    assert (record.tenant, record.outcome) == (BUILDS_TENANT, CheckOutcome.CHECKED)
    # A source the worker cannot read within its limit: the refusal, no parse here.
    with pytest.raises(UploadCheckLimit) as stopped:
        checker.scan_for_build(write_tar_gz({"main.py": BOMB}))
    assert stopped.value.details["file"] == "main.py"
    assert checker.records[-1].outcome is CheckOutcome.MEMORY_LIMIT


def test_a_tenant_share_larger_than_the_pool_is_refused_at_start() -> None:
    with pytest.raises(ValidationError) as refused:
        Settings(upload_check_workers=2, upload_check_per_tenant=3)
    assert (
        "EXECUTOR_UPLOAD_CHECK_PER_TENANT=3 is above EXECUTOR_UPLOAD_CHECK_WORKERS=2: a "
        "tenant's share is part of the pool; lower it or add workers"
    ) in str(refused.value)
    assert CheckerLimits.from_settings(Settings().uploads) == CheckerLimits(
        workers=2, per_tenant=1, memory_bytes=1024 * MIB, timeout_s=30.0
    )


def test_code_nested_too_deeply_is_a_refusal_not_a_limit(checker: UploadChecker) -> None:
    # The parser reports its own stack overflow as a MemoryError, far below the limit.
    deep = make_zip({"main.py": b"x = " + b"-" * 200_000 + b"1\n"})
    checked = checker.check("acme", "deep.zip", deep, UploadLimits())
    assert checked.error is not None
    assert checked.error.to_dict() == {
        "code": "plugin_rejected",
        "message": "main.py: the code is nested too deeply to parse. Simplify it and upload again.",
        "file": "main.py",
    }
    record = checker.records[-1]
    assert record.outcome is CheckOutcome.REJECTED and not record.replaced


def test_an_archive_unpacking_past_its_cap_is_charged_the_cap(checker: UploadChecker) -> None:
    data = make_zip({"main.py": MAIN, "data.bin": bytes(2 * MIB)})
    checked = checker.check("acme", "big.zip", data, UploadLimits(max_unpacked_bytes=MIB))
    assert isinstance(checked.error, UploadTooLarge)
    assert checked.error.details == {"file": "data.bin", "limit": MIB}
    assert checked.unpacked_bytes == MIB


class LyingWorker:
    """A check worker whose replies are written in advance (what a worker subverted by the
    code it parsed could send)."""

    pid = 0

    def __init__(self, *frames: bytes) -> None:
        read_end, write_end = os.pipe()
        with os.fdopen(write_end, "wb") as pipe:
            for frame in frames:
                write_frame(pipe, frame)
        self.replies = read_end
        self.requests = open(os.devnull, "wb")  # noqa: SIM115 (closed by stop)
        self.stopped = False

    def ended_how(self) -> str:
        return "stopped by the test"

    def stop(self) -> int:
        self.stopped = True
        self.requests.close()
        os.close(self.replies)
        return 0


def test_a_build_scan_naming_a_pyc_outside_the_sources_is_not_believed() -> None:
    request = CheckRequest(
        kind=CheckKind.IMPORTS, filename="source.tar.gz", **asdict(UploadLimits())
    )
    found = {"paths": ["main.py"], "imports": [], "warnings": []}
    honest = {**found, "bytecode": [pyc_path("main.py")]}
    lying = {**found, "bytecode": ["../../etc/cron.d/x"]}
    results = {}
    for name, imports in (("honest", honest), ("lying", lying)):
        reply = CheckReply(
            outcome=WorkerOutcome.CHECKED, peak_rss_bytes=0, unpacked_bytes=9, imports=imports
        )
        worker = LyingWorker(
            Unpacked(bytes=9).model_dump_json().encode(), reply.model_dump_json().encode(), b"pyc"
        )
        liar = cast(CheckWorker, worker)  # the pipes and stop() run_check uses
        checked, record = run_check(liar, BUILDS_TENANT, request, b"", timeout_s=5, memory_bytes=1)
        results[name] = (checked, record, worker.stopped)
        if not worker.stopped:
            worker.stop()
    checked, record, stopped = results["honest"]
    assert checked.build_scan is not None
    assert dict(checked.build_scan.bytecode.files) == {pyc_path("main.py"): b"pyc"}
    assert (record.outcome, stopped) == (CheckOutcome.CHECKED, False)
    checked, record, stopped = results["lying"]
    assert checked.build_scan is None and checked.source is None
    assert (record.outcome, record.replaced, stopped) == (CheckOutcome.ENDED, True, True)
