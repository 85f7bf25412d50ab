"""Upload checks stay within bounds against a real executor on loopback: bombs are refused by
their check worker's limits while the API keeps answering, over REST and GraphQL alike, and
the upload-bytes rate counts what an upload unpacks to."""

from __future__ import annotations

import io
import threading
import zipfile
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from executor.intake.check_run import CheckOutcome
from executor.store.tables import Plugin, PluginVersion
from tests.conftest import ExecutorApi, RunningServer, ServerFactory
from tests.integration.tenancy import ALL_SCOPES, as_key, create_key, create_tenant

pytestmark = pytest.mark.docker

MIB = 1024 * 1024
# 4 MiB of one list literal, some 4 KiB zipped: ast.parse needs about 2 GiB for it.
BOMB = b"x = [" + b"1," * (2 * MIB) + b"]\n"
WORKER_MEMORY = 256 * MIB
BOMBS_AT_ONCE = 3  # the bomber's share (1) and the two it may have waiting
HANDLER = (
    b"from plugin_runtime import PluginCore\n"
    b"class PluginHandler(PluginCore):\n"
    b"    def on_submit(self, label, asset_id):\n"
    b"        pass\n"
)


def make_zip(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path, content in files.items():
            archive.writestr(path, content)
    return buffer.getvalue()


def post_plugin(api: ExecutorApi, name: str, filename: str, data: bytes) -> httpx.Response:
    return api.api.post("/v1/plugins", data={"name": name}, files={"file": (filename, data)})


def stored(server: RunningServer) -> tuple[list[str], int]:
    """The plugin names and the number of versions in the store."""
    with server.service.db.session() as session:
        names = sorted(session.scalars(select(Plugin.name)))
        versions = session.scalar(select(func.count()).select_from(PluginVersion)) or 0
    return names, versions


def peak_rss_reset() -> None:
    with open("/proc/self/clear_refs", "wb") as clear:
        clear.write(b"5")


def peak_rss() -> int:
    """This process's peak RSS since the last reset: the API server runs in it."""
    with open("/proc/self/status", encoding="ascii") as status:
        line = next(line for line in status if line.startswith("VmHWM:"))
    return int(line.split()[1]) * 1024


@pytest.fixture(scope="module")
def server(server_factory: ServerFactory) -> RunningServer:
    running: RunningServer = server_factory(
        upload_max_file_bytes=8 * MIB,  # lets the bomb reach the parser, in a worker
        upload_check_memory_bytes=WORKER_MEMORY,
        upload_check_workers=2,
        upload_check_per_tenant=1,
    )
    return running


@pytest.fixture(scope="module")
def bomber(server: RunningServer) -> Iterator[ExecutorApi]:
    create_tenant(server, "bomber")
    api = as_key(server, create_key(server, "bomber", ALL_SCOPES)["key"])
    yield api
    api.api.close()


class HealthPoller:
    """Polls ``GET /healthz`` in a thread until stopped; keeps every status."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.statuses: list[int] = []
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        with httpx.Client(base_url=self.url, timeout=120) as client:
            while True:
                self.statuses.append(client.get("/healthz").status_code)
                if self.done.is_set():
                    return

    def __enter__(self) -> HealthPoller:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        self.thread.join()


def test_bombs_posted_at_once_stop_in_their_workers_while_the_api_answers(
    server: RunningServer, bomber: ExecutorApi
) -> None:
    before = stored(server)
    data = make_zip({"main.py": BOMB})
    answers: list[httpx.Response] = []

    def post_bomb(n: int) -> None:
        answers.append(post_plugin(bomber, f"bomb{n}", "bomb.zip", data))

    peak_rss_reset()
    rss_before = peak_rss()
    posts = [threading.Thread(target=post_bomb, args=(n,)) for n in range(BOMBS_AT_ONCE)]
    with HealthPoller(server.url) as health:
        for thread in posts:
            thread.start()
        for thread in posts:
            thread.join()
    assert len(answers) == BOMBS_AT_ONCE
    for answer in answers:
        assert answer.status_code == 422, answer.text
        body = answer.json()
        assert body["code"] == "upload_check_limit"
        assert (body["file"], body["limit"], body["maximum"]) == (
            "main.py",
            "EXECUTOR_UPLOAD_CHECK_MEMORY_BYTES",
            WORKER_MEMORY,
        )
    assert health.statuses and set(health.statuses) == {200}
    # The pool's record: each bomb ran to its worker's limit, and no further.
    records = server.service.upload_checker.records
    bombs = [r for r in records if r.filename == "bomb.zip"][-BOMBS_AT_ONCE:]
    assert [r.outcome for r in bombs] == [CheckOutcome.MEMORY_LIMIT] * BOMBS_AT_ONCE
    assert all(WORKER_MEMORY // 2 <= r.peak_rss_bytes <= WORKER_MEMORY for r in bombs)
    assert all(r.replaced for r in bombs) and len({r.worker_pid for r in bombs}) == BOMBS_AT_ONCE
    # The API process's own record: it never parsed a bomb (one would take gigabytes).
    assert peak_rss() - rss_before < 64 * MIB
    assert stored(server) == before


def test_a_source_file_over_the_cap_answers_413_and_stores_nothing(
    server: RunningServer, bomber: ExecutorApi
) -> None:
    before = stored(server)
    big = b"#" * (9 * MIB) + b"\n"
    response = post_plugin(bomber, "big", "big.zip", make_zip({"main.py": HANDLER + big}))
    assert response.status_code == 413, response.text
    assert response.json() == {
        "code": "upload_too_large",
        "message": f"main.py is {len(HANDLER + big)} bytes, over the 8 MiB limit for one source "
        "file (EXECUTOR_UPLOAD_MAX_FILE_BYTES): move data out of the code (into a data file "
        "read at run time) or split the module, and upload again.",
        "file": "main.py",
        "limit": 8 * MIB,
    }
    assert stored(server) == before


def graphql(server: RunningServer, key: str, query: str) -> dict[str, Any]:
    response = httpx.post(
        f"{server.url}/graphql",
        json={"query": query},
        headers={"Authorization": f"X-API-Key: {key}"},
        timeout=120,
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_the_kili_upload_path_goes_through_the_same_check(server: RunningServer) -> None:
    create_tenant(server, "kili-bomber")
    key = create_key(server, "kili-bomber", ALL_SCOPES)["key"]
    before = stored(server)
    url = graphql(server, key, 'mutation { createPlugin(data: {pluginName: "kbomb"}) }')
    put = httpx.put(
        url["data"]["createPlugin"],
        content=make_zip({"main.py": BOMB}),
        headers={"Authorization": f"X-API-Key: {key}"},
        timeout=120,
    )
    assert put.status_code == 200, put.text
    ran = graphql(server, key, 'mutation { createPluginRunner(data: {pluginName: "kbomb"}) }')
    (error,) = ran["errors"]
    extensions = error["extensions"]
    assert (extensions["code"], extensions["status"], extensions["file"]) == (
        "upload_check_limit",
        422,
        "main.py",
    )
    assert extensions["maximum"] == WORKER_MEMORY
    assert error["message"].startswith("Checking the upload 'plugin.zip' at main.py needed more")
    assert server.service.upload_checker.records[-1].outcome is CheckOutcome.MEMORY_LIMIT
    assert stored(server) == before


def test_upload_bytes_are_charged_unpacked(server_factory: ServerFactory) -> None:
    limited: RunningServer = server_factory(key_upload_bytes_per_hour=MIB)
    create_tenant(limited, "packer")
    packer = as_key(limited, create_key(limited, "packer", ALL_SCOPES)["key"])
    # 900 KiB of data unpacked, about 1 KiB zipped; no handler, so refused after unpacking
    # (and no build): the check did the unpacking all the same.
    data = make_zip({"main.py": b"x = 1\n", "data.bin": bytes(900 * 1024)})
    assert len(data) < 8 * 1024
    first = post_plugin(packer, "packed", "packed.zip", data)
    assert first.status_code == 422 and first.json()["code"] == "plugin_rejected", first.text
    assert limited.service.upload_checker.records[-1].unpacked_bytes == 900 * 1024 + 6
    second = post_plugin(packer, "packed", "packed.zip", data)
    assert second.status_code == 429, second.text
    assert second.json()["code"] == "rate_limited"
    assert int(second.headers["Retry-After"]) > 60
    packer.api.close()
