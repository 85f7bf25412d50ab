"""Images through a real registry (Distribution 2.8 with TLS and htpasswd, set up by
deploy/registry.sh): builds push and record the digest, runs pull by digest, retention
deletes the manifest; wrong credentials, a registry that is down and a digest the registry
does not have are each a clear error, never a stuck build or run."""

from __future__ import annotations

import re
import ssl
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import httpx
import pytest

from executor.registry import Registry, RegistryError
from executor.settings import ImageSettings
from tests.conftest import RunningServer, ServerFactory
from tests.integration.registry import PASSWORD, USER, LocalRegistry, image_events

MAIN = "class PluginHandler:\n    def on_submit(self, label, asset_id):\n        print({!r})\n"
EVENT = {"type": "onSubmit", "asset_id": "a", "label": {}}


@pytest.fixture(scope="module")
def registry(
    tmp_path_factory: pytest.TempPathFactory, docker_client: docker.DockerClient
) -> Iterator[LocalRegistry]:
    local = LocalRegistry(tmp_path_factory.mktemp("registry") / "registry").start()
    yield local
    local.close(docker_client)


@pytest.fixture(scope="module")
def pushing(server_factory: ServerFactory, registry: LocalRegistry) -> RunningServer:
    """An executor that pushes to the registry and keeps one version per plugin."""
    return server_factory(keep_versions=1, **registry.settings())


def push(server: RunningServer, root: Path, name: str, says: str, **kw: Any) -> dict[str, Any]:
    folder = root / name
    folder.mkdir(exist_ok=True)
    (folder / "main.py").write_text(MAIN.format(says))
    return server.push(folder, **kw)


def digest_of(server: RunningServer, name: str, number: int) -> str:
    versions = server.api.get(f"/v1/plugins/{name}").json()["versions"]
    (version,) = [v for v in versions if v["version"] == number]
    return str(version["image_digest"])


def test_a_build_pushes_and_records_the_digest(
    pushing: RunningServer, registry: LocalRegistry, tmp_path: Path
) -> None:
    build = push(pushing, tmp_path, "pushed", "hi")
    digest = digest_of(pushing, "pushed", 1)
    repository, _, manifest_digest = digest.partition("@")
    assert repository.startswith(f"{registry.address}/plugin-executor/p-")
    assert manifest_digest.startswith("sha256:") and len(manifest_digest) == len("sha256:") + 64
    pushing_step = f"==> Pushing to the registry {registry.address}"
    assert re.search(
        f"\n{re.escape(pushing_step)}\n{re.escape(pushing_step)}: done in [0-9.]+ s\n"
        f"Pushed {re.escape(digest)}\n",
        build["log"],
    ), build["log"]
    manifest = registry.manifest(digest)
    assert manifest.status_code == httpx.codes.OK
    assert manifest.headers["Docker-Content-Digest"] == manifest_digest


def test_a_run_pulls_the_version_by_digest(
    pushing: RunningServer,
    registry: LocalRegistry,
    docker_client: docker.DockerClient,
    tmp_path: Path,
) -> None:
    push(pushing, tmp_path, "pulled", "pulled by digest")
    digest = digest_of(pushing, "pulled", 1)
    pushing.activate("pulled", "pull")
    registry.remove_local_images(docker_client)  # the tag and the image: it must be pulled
    with pytest.raises(docker.errors.ImageNotFound):
        docker_client.images.get(digest)
    since = time.time() - 1

    run = pushing.run_event(project_id="pull", **EVENT)

    assert run["status"] == "succeeded", run["error"]
    logs = pushing.logs(run_id=run["id"])
    assert [r["content"] for r in logs if r["log_type"] != "SYSTEM"] == ["pulled by digest"]
    repository = digest.partition("@")[0]
    pulls = [e["id"] for e in image_events(docker_client, since, "pull")]
    assert digest in pulls
    assert [p for p in pulls if p.startswith(repository) and p != digest] == []  # no tag
    created = [
        e["Actor"]["Attributes"]["image"]
        for e in image_events(docker_client, since, "create")
        if e.get("Type") == "container"
        and e["Actor"]["Attributes"].get("io.plugin-executor.invocation") == run["id"]
    ]
    assert created == [digest]


def test_what_an_activation_runs_is_pulled_before_its_first_event(
    pushing: RunningServer,
    registry: LocalRegistry,
    docker_client: docker.DockerClient,
    tmp_path: Path,
) -> None:
    push(pushing, tmp_path, "early", "hi")
    digest = digest_of(pushing, "early", 1)
    registry.remove_local_images(docker_client)
    since = time.time() - 1

    pushing.activate("early", "early")  # no event: the pre-pull alone brings the image

    deadline = time.monotonic() + 120
    while not pushing.service.engine.images.exists(digest):
        assert time.monotonic() < deadline, f"{digest} was not pre-pulled"
        time.sleep(0.2)
    assert digest in [e["id"] for e in image_events(docker_client, since, "pull")]
    assert pushing.api.get("/v1/invocations", params={"project_id": "early"}).json() == []


def test_a_warm_pool_pulls_the_version_it_keeps_warm(
    server_factory: ServerFactory,
    registry: LocalRegistry,
    docker_client: docker.DockerClient,
    tmp_path: Path,
) -> None:
    """A worker's pool of a version its engine lacks starts warm containers without
    waiting for the pre-puller (stopped here): the fill pulls by digest itself, and the
    first event starts warm."""
    server = server_factory(warm_pool_size=1, **registry.settings())
    assert server.service.prepuller is not None
    server.service.prepuller.stop()
    push(server, tmp_path, "warmed", "kept warm")
    digest = digest_of(server, "warmed", 1)
    registry.remove_local_images(docker_client)
    since = time.time() - 1

    server.activate("warmed", "warmed")

    deadline = time.monotonic() + 120
    while not docker_client.containers.list(filters={"ancestor": digest}):
        assert time.monotonic() < deadline, "no warm container of the pulled version"
        time.sleep(0.2)
    assert digest in [e["id"] for e in image_events(docker_client, since, "pull")]
    run = server.run_event(project_id="warmed", **EVENT)
    assert (run["status"], run["start"]) == ("succeeded", "warm"), run["error"]


def test_a_digest_the_registry_lacks_fails_the_run(
    pushing: RunningServer,
    registry: LocalRegistry,
    docker_client: docker.DockerClient,
    tmp_path: Path,
) -> None:
    push(pushing, tmp_path, "vanished", "never runs")
    digest = digest_of(pushing, "vanished", 1)
    pushing.activate("vanished", "vanish")
    repository, _, manifest_digest = digest.partition("@")
    name = repository.removeprefix(registry.address + "/")
    deleted = httpx.delete(
        f"https://{registry.address}/v2/{name}/manifests/{manifest_digest}",
        auth=(USER, PASSWORD),
        verify=ssl.create_default_context(cafile=str(registry.ca)),
    )
    assert deleted.status_code == httpx.codes.ACCEPTED
    docker_client.images.remove(str(docker_client.images.get(digest).id), force=True, noprune=True)

    run = pushing.run_event(project_id="vanish", **EVENT)

    assert run["status"] == "crashed"
    assert run["error"].startswith(
        f"pulling {digest}: the registry {registry.address} has no such image ("
    )
    assert run["error"].endswith(
        "the version's image is gone from the registry; upload the version again"
    )
    assert [a["attempt"] for a in run["attempts"]] == [1]  # failed at once, not retried
    (record,) = pushing.logs(run_id=run["id"])
    assert record["content"] == run["error"]
    assert pushing.api.get("/v1/plugins/vanished").json()["versions"][0]["status"] == "ACTIVE"


def test_wrong_credentials_fail_the_build(
    server_factory: ServerFactory, registry: LocalRegistry, tmp_path: Path
) -> None:
    refused = server_factory(**registry.settings(password="not-the-password"))

    build = push(refused, tmp_path, "refused", "hi", expect="FAILED")

    error = build["error"]
    assert error.startswith(f"pushing {registry.address}/plugin-executor/p-")
    assert f" at {registry.address} failed: " in error
    assert error.endswith(
        "the registry refused the credentials: check EXECUTOR_REGISTRY_USER and "
        "EXECUTOR_REGISTRY_PASSWORD"
    )
    assert "not-the-password" not in build["log"]
    assert build["log"].endswith(f"BUILD FAILED: {error}\n")
    version = refused.api.get("/v1/plugins/refused").json()["versions"][0]
    assert version["image_digest"] is None and version["current"] is False


def test_a_registry_the_executor_does_not_trust_is_named(registry: LocalRegistry) -> None:
    untrusting = Registry(
        ImageSettings(registry=registry.address, registry_user=USER, registry_password=PASSWORD)
    )  # no EXECUTOR_REGISTRY_CA_BUNDLE: the test's own CA is trusted by nobody else
    reference = f"{registry.address}/plugin-executor/p-none@sha256:{'0' * 64}"

    with pytest.raises(RegistryError) as caught:
        untrusting.delete(reference)

    message = caught.value.message
    assert message.startswith(f"deleting {reference} from the registry {registry.address} failed: ")
    assert "CERTIFICATE_VERIFY_FAILED" in message
    assert message.endswith(
        "the executor does not trust the registry's certificate: set "
        "EXECUTOR_REGISTRY_CA_BUNDLE to the registry's CA (PEM)"
    )
    assert PASSWORD not in message


def test_retention_deletes_the_manifest_from_the_registry(
    pushing: RunningServer, registry: LocalRegistry, tmp_path: Path
) -> None:
    push(pushing, tmp_path, "kept", "v1")
    first = digest_of(pushing, "kept", 1)
    push(pushing, tmp_path, "kept", "v2")  # keep_versions=1: v1 goes
    second = digest_of(pushing, "kept", 2)

    deadline = time.monotonic() + 60
    while registry.manifest(first).status_code != httpx.codes.NOT_FOUND:
        assert time.monotonic() < deadline, "v1's manifest was not deleted from the registry"
        time.sleep(0.2)
    assert registry.manifest(second).status_code == httpx.codes.OK
    versions = pushing.api.get("/v1/plugins/kept").json()["versions"]
    assert [(v["version"], v["image_removed"]) for v in versions] == [(1, True), (2, False)]

    # The registry's garbage collection frees v1's own blobs (its manifest among them).
    before = registry.blobs()
    output = registry.collect_garbage()
    freed = before - registry.blobs()
    assert first.partition("@sha256:")[2] in freed, output
    assert second.partition("@sha256:")[2] not in freed
    assert registry.manifest(second).status_code == httpx.codes.OK


def test_registry_down_fails_builds_while_pulled_versions_run(
    pushing: RunningServer, registry: LocalRegistry, tmp_path: Path
) -> None:
    push(pushing, tmp_path, "steady", "still here")
    pushing.activate("steady", "steady")
    assert pushing.run_event(project_id="steady", **EVENT)["status"] == "succeeded"
    registry.stop()
    try:
        build = push(pushing, tmp_path, "unlucky", "hi", expect="FAILED")
        run = pushing.run_event(project_id="steady", **EVENT)
    finally:
        registry.start()

    assert build["error"].startswith(f"pushing {registry.address}/plugin-executor/p-")
    assert build["error"].endswith(
        "the registry cannot be reached: check that it runs and that the Docker Engine's "
        "host can reach it"
    )
    assert run["status"] == "succeeded", run["error"]
    logs = pushing.logs(run_id=run["id"])
    assert [r["content"] for r in logs if r["log_type"] != "SYSTEM"] == ["still here"]
