"""The generated Dockerfile and build context (no Docker needed)."""

from __future__ import annotations

import io
import tarfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from executor.build.context import BuildContext, context_archive, dockerfile
from executor.errors import BuildFailed
from executor.settings import Settings
from executor.statuses import RuntimeFlavor


def settings(**values: Any) -> Settings:
    return Settings(operator_key="k", **values)


def build(requirements: str = "six==1.16.0\n") -> BuildContext:
    return BuildContext("vid", "pid", 3, requirements, b"source-bytes", RuntimeFlavor.KILI)


def members(archive: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        return {m.name: _read(tar, m) for m in tar.getmembers()}


def _read(tar: tarfile.TarFile, member: tarfile.TarInfo) -> bytes:
    extracted = tar.extractfile(member)
    assert extracted is not None, f"{member.name} is not a regular file"
    return extracted.read()


def test_pip_runs_isolated_as_the_build_user_with_the_operators_index(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("PEM")
    text = dockerfile(
        settings(build_index_url="https://idx.example/simple", build_ca_bundle=ca),
        True,
        RuntimeFlavor.KILI,
    )
    lines = text.splitlines()
    pip_line = next(line for line in lines if "pip install" in line)
    assert lines[lines.index(pip_line) - 1] == "USER 10001:10001"
    assert pip_line.startswith("RUN PIP_CONFIG_FILE=/dev/null python3 -m pip install --isolated")
    for flag in (
        "--no-input",
        "--no-cache-dir",
        "--index-url https://idx.example/simple",
        "--cert /opt/build/build-ca.pem",
        "-r /opt/build/requirements.txt",
    ):
        assert flag in pip_line
    assert "pip freeze" in pip_line and "/opt/venv/pip-freeze.txt" in pip_line
    # Nothing secret can travel in build args or environment.
    assert not any(line.startswith(("ARG", "ENV")) for line in lines)
    assert lines[lines.index(pip_line) + 1] == "USER 10000:10000"
    assert members(context_archive(settings(build_ca_bundle=ca), build()))["build-ca.pem"] == b"PEM"


def test_offline_mode_uses_only_the_wheelhouse(tmp_path: Path) -> None:
    (tmp_path / "six-1.16.0-py2.py3-none-any.whl").write_bytes(b"wheel")
    offline = settings(build_wheelhouse=tmp_path)
    text = dockerfile(offline, True, RuntimeFlavor.KILI)
    assert "--no-index --find-links /opt/build/wheelhouse" in text
    assert "--index-url" not in text
    files = members(context_archive(offline, build()))
    assert files["wheelhouse/six-1.16.0-py2.py3-none-any.whl"] == b"wheel"
    assert files["requirements.txt"] == b"six==1.16.0\n"


def test_missing_wheelhouse_fails_the_build(tmp_path: Path) -> None:
    with pytest.raises(BuildFailed) as caught:
        context_archive(settings(build_wheelhouse=tmp_path / "nope"), build())
    assert caught.value.message == (
        f"the wheelhouse {tmp_path / 'nope'} (EXECUTOR_BUILD_WHEELHOUSE) is not a folder: "
        "create it with 'pip download -d' or unset the setting"
    )


def test_no_requirements_no_pip_step() -> None:
    text = dockerfile(settings(), False, RuntimeFlavor.MINIMAL)
    assert "pip" not in text
    assert "requirements.txt" not in members(context_archive(settings(), build("")))


def test_builds_never_use_the_host_network() -> None:
    with pytest.raises(ValidationError, match="builds never use the host network"):
        settings(build_network="host")


@pytest.mark.parametrize(
    ("runtime_image", "flavor", "base"),
    [
        ("plugin-executor-runtime:latest", "kili", "plugin-executor-runtime-kili:latest"),
        ("plugin-executor-runtime:wt-D", "minimal", "plugin-executor-runtime-minimal:wt-D"),
        ("registry:5000/runtime", "datascience", "registry:5000/runtime-datascience:latest"),
    ],
)
def test_a_plugin_image_builds_from_its_flavors_image(
    runtime_image: str, flavor: str, base: str
) -> None:
    text = dockerfile(settings(runtime_image=runtime_image), False, RuntimeFlavor(flavor))
    assert text.splitlines()[0] == f"FROM {base}"


def test_the_code_is_the_last_step_after_the_run_user_and_the_label() -> None:
    """Only the code changes between a plugin's versions: the run user and the plugin-image
    label come before it, from the engine's cache, as the requirements do. After the code,
    each of them made a step (a container, committed) for every code-only version."""
    for has_requirements in (True, False):
        text = dockerfile(settings(), has_requirements, RuntimeFlavor.MINIMAL)
        assert text.splitlines()[-3:] == [
            "USER 10000:10000",
            'LABEL "io.plugin-executor.plugin-image"="true"',
            "ADD source.tar.gz bytecode.tar /opt/plugin/plugin_code/",
        ]
        assert text.count("LABEL") == 1


def test_code_only_the_code_and_its_bytecode_are_one_step_that_runs_nothing() -> None:
    """No RUN after the code: the bytecode the build compiled is extracted over it by the
    same ADD, so a code-only version's build starts no container. The version's id goes
    with it: one image per version, even of the same code."""
    pyc = {"__pycache__/main.cpython-311.pyc": b"pyc", "lib/__pycache__/a.cpython-311.pyc": b"a"}
    context = members(context_archive(settings(), replace(build(""), bytecode=pyc)))
    assert context["Dockerfile"].decode().splitlines() == [
        "FROM plugin-executor-runtime-kili:latest",
        "USER 10000:10000",
        'LABEL "io.plugin-executor.plugin-image"="true"',
        "ADD source.tar.gz bytecode.tar /opt/plugin/plugin_code/",
    ]
    assert members(context["bytecode.tar"]) == {
        **pyc,
        "__pycache__/plugin-executor-version": b"vid\n",
    }
    assert context["source.tar.gz"] == b"source-bytes"
    # Without bytecode (no scan: ``plugin-executor run``), the code and the version's id.
    plain = members(context_archive(settings(), build("")))
    assert members(plain["bytecode.tar"]) == {"__pycache__/plugin-executor-version": b"vid\n"}
    assert "RUN" not in plain["Dockerfile"].decode()
