"""Build timings on the local Docker Engine: figures, not assertions.

    .venv/bin/python bench/builds.py [--requirements "six==1.16.0 attrs==23.2.0"]

Measures, through a real executor service (own temp data dir, SQLite):
  1. first build of a plugin with requirements (pip runs; a unique comment defeats old cache),
  2. a second plugin with the same requirements (the pip layer comes from the cache),
  3. a code-only new version of the first plugin (the pip layer comes from the cache).
Every image built is removed at the end. Set EXECUTOR_BUILD_CA_BUNDLE if the index needs it.
"""

from __future__ import annotations

import argparse
import contextlib
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import docker

from executor.intake.upload import pack_directory
from executor.service.wiring import ExecutorService
from executor.settings import Settings
from executor.store import plugins as plugin_store
from executor.store import versions as version_store
from executor.tenancy.access import operator_caller

MAIN = "class PluginHandler:\n    def on_submit(self, label, asset_id):\n        print({!r})\n"
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")


def build(service: ExecutorService, folder: Path, name: str) -> tuple[float, str, bool]:
    """Upload and build in-process; (seconds, status, whether pip ran)."""
    started = time.monotonic()
    version = service.uploads.upload(
        operator_caller(), name, f"{name}.tar.gz", pack_directory(folder)
    )
    while True:
        with service.db.session() as session:
            progress = version_store.build_progress(session, version.id)
        if progress.status != "DEPLOYING":
            ran_pip = "Successfully installed" in progress.log
            return time.monotonic() - started, progress.status, ran_pip
        time.sleep(0.01)  # a code-only build takes half a second: polled finely enough


BuildRow = tuple[str, float, str, bool]


def measure_builds(requirements: list[str]) -> list[BuildRow]:
    """The three cases of the module docstring: (case, seconds, status, whether pip ran)."""
    pinned = "\n".join(requirements) + f"\n# bench {uuid.uuid4()}\n"
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        # Settings from EXECUTOR_* (e.g. EXECUTOR_RUNTIME_IMAGE) apply as well.
        settings = Settings(
            data_dir=root / "data",
            operator_key="pe_op_bench-key-0123456789",
            build_ca_bundle=CA_BUNDLE if CA_BUNDLE.exists() else None,
            warm_pool_size=0,
        )
        service = ExecutorService(settings)
        service.start()
        folders = {}
        for name in ("bench_a", "bench_b"):
            folders[name] = root / name
            folders[name].mkdir()
            (folders[name] / "requirements.txt").write_text(pinned)
            (folders[name] / "main.py").write_text(MAIN.format(name))
        try:
            rows = [("first build (pip runs)", *build(service, folders["bench_a"], "bench_a"))]
            rows.append(
                ("second plugin, same requirements", *build(service, folders["bench_b"], "bench_b"))
            )
            (folders["bench_a"] / "main.py").write_text(MAIN.format("bench_a v2"))
            rows.append(("code-only new version", *build(service, folders["bench_a"], "bench_a")))
        finally:
            with service.db.session() as session:
                tags = [
                    v.image_tag
                    for p in plugin_store.list_plugins(session, None)
                    for v in p.versions
                ]
            service.stop()
            client = docker.from_env()
            for tag in filter(None, tags):
                with contextlib.suppress(docker.errors.ImageNotFound):
                    client.images.remove(tag, force=True)
            client.close()
    return rows


def bare_build_s(runtime_image: str) -> float:
    """Seconds of a bare ``docker build`` that copies one new file onto the runtime image:
    the engine's floor for any plugin build."""
    tag = f"plugin-executor-bench-floor:{uuid.uuid4().hex[:12]}"
    with tempfile.TemporaryDirectory() as tmp:
        context = Path(tmp)
        (context / "Dockerfile").write_text(
            f"FROM {runtime_image}\nCOPY main.py /opt/plugin/plugin_code/main.py\n"
        )
        (context / "main.py").write_text(MAIN.format(tag))
        started = time.monotonic()
        subprocess.run(
            ["docker", "build", "-q", "-t", tag, str(context)], check=True, capture_output=True
        )
        elapsed = time.monotonic() - started
    subprocess.run(["docker", "rmi", "-f", tag], check=False, capture_output=True)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requirements", default="six==1.16.0 attrs==23.2.0")
    args = parser.parse_args()
    rows = measure_builds(args.requirements.split())
    print(f"requirements: {args.requirements}")
    print(f"{'case':<36} {'seconds':>8}  {'status':<7} pip ran")
    for case, seconds, status, ran_pip in rows:
        print(f"{case:<36} {seconds:>8.1f}  {status:<7} {'yes' if ran_pip else 'no'}")


if __name__ == "__main__":
    main()
