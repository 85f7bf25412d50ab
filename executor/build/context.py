"""The build context of a plugin image: its Dockerfile and the files it copies.

Layers, in order: the runtime flavor's image (the runtime base image and the flavor's
packages, in /opt/venv); the requirements (over the flavor's: a pinned version wins),
installed by pip as the unprivileged build user in their own layer (identical requirements
and settings give an identical step, so the engine's cache shares it across plugins and
across code-only versions); the run user and the plugin-image label, also cached; then the
code, with its bytecode when the build compiled it (``executor.intake.bytecode``) and the
version's id (``VERSION_FILE``), in the last step, which runs no container. Nothing secret
goes in: no build args, no environment but pip's own switches; the CA bundle is public data.
"""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from executor.errors import BuildFailed
from executor.sandbox.import_check import PLUGIN_CODE
from executor.settings import BuildSettings, Settings
from executor.statuses import RuntimeFlavor

__all__ = [
    "BUILD_USER",
    "FREEZE_PATH",
    "IMAGE_LABEL",
    "MODULES_CODE",
    "MODULES_PATH",
    "VERSION_FILE",
    "BuildContext",
    "build_phase",
    "context_archive",
    "dockerfile",
    "pip_command",
]

BUILD_USER = "10001:10001"  # owns /opt/venv; never root
RUN_USER = "10000:10000"
CA_FILE = "build-ca.pem"
# The .pyc files and the version file, extracted over the code by the same ADD.
BYTECODE_FILE = "bytecode.tar"
# The version's id, in the code's __pycache__ (no import looks at it there): one image per
# version. Without it the same code on the same requirements builds one image for every
# plugin, of any tenant, that uploads it, and removing one's image by its id removes all.
VERSION_FILE = "__pycache__/plugin-executor-version"
WHEELHOUSE_DIR = "wheelhouse"
BUILD_DIR = "/opt/build"
FREEZE_PATH = "/opt/venv/pip-freeze.txt"  # `pip freeze` after the install, read back per version
# The top-level modules of every installed distribution, one "module distribution..." line
# each, read as importlib.metadata.packages_distributions() reads them (each distribution's
# top_level.txt, else the top-level names of its RECORD): the unresolved-import warning
# decides from what the requirements installed, whatever their distributions are called.
MODULES_PATH = "/opt/venv/plugin-modules.txt"
MODULES_CODE = (
    "import importlib.metadata as m; "
    "[print(k, *sorted(set(v))) for k, v in sorted(m.packages_distributions().items())]"
)
# The flavor's own `pip freeze` (runtime_image/flavors/Dockerfile): left out of the version's.
FLAVOR_FREEZE_PATH = "/opt/venv/flavor-freeze.txt"
MAX_WHEELHOUSE_BYTES = 2 * 1024 * 1024 * 1024
# The build's steps as the log shows them (``executor.build.steps``): the instruction that
# starts each, the others belong to the step before them.
PREPARE_STEP = "Preparing the runtime flavor image"
REQUIREMENTS_STEP = "Installing requirements.txt (pip)"
CODE_STEP = "Adding the plugin's code"
# On plugin images. Not the managed-container label: containers inherit image labels, and
# crash recovery removes every managed container.
IMAGE_LABEL = "io.plugin-executor.plugin-image"


@dataclass(frozen=True)
class BuildContext:
    """What one build needs, read from the store before the build starts."""

    version_id: str
    plugin_id: str
    number: int
    requirements: str
    source: bytes
    runtime: RuntimeFlavor
    # The .pyc files by path in the plugin's folder (none: each container compiles the code).
    bytecode: Mapping[str, bytes] = field(default_factory=dict)

    @property
    def tag(self) -> str:
        return f"plugin-executor/p-{self.plugin_id}:v{self.number}"

    @property
    def has_requirements(self) -> bool:
        return bool(self.requirements.strip())


def pip_command(build: BuildSettings) -> str:
    """The pip install line: isolated from any config, no cache, the operator's index (with
    its CA bundle) or, offline, the operator's wheelhouse only. The freeze it saves keeps
    what the requirements installed or changed: the flavor's unchanged pins are left out;
    the modules list names the top-level modules of every installed distribution."""
    if build.wheelhouse is not None:
        source = f"--no-index --find-links {BUILD_DIR}/{WHEELHOUSE_DIR}"
    else:
        cert = f" --cert {BUILD_DIR}/{CA_FILE}" if build.ca_bundle else ""
        source = f"--index-url {build.index_url}{cert}"
    return (
        "PIP_CONFIG_FILE=/dev/null python3 -m pip install --isolated --no-input --no-cache-dir"
        f" --disable-pip-version-check {source} -r {BUILD_DIR}/requirements.txt"
        f" && touch {FLAVOR_FREEZE_PATH}"
        " && python3 -m pip freeze --isolated --disable-pip-version-check"
        f" | {{ grep -vxFf {FLAVOR_FREEZE_PATH} || true; }} > {FREEZE_PATH}"
        # Only a warning depends on the list: a distribution's odd metadata fails no build.
        f' && {{ python3 -c "{MODULES_CODE}" > {MODULES_PATH} || true; }}'
    )


def dockerfile(settings: Settings, has_requirements: bool, runtime: RuntimeFlavor) -> str:
    """The Dockerfile of a plugin image (see the module docstring for its layers)."""
    uid, gid = BUILD_USER.split(":")
    lines = [f"FROM {settings.images.flavor_image(runtime)}"]
    if has_requirements:
        lines.append("USER root")
        if settings.build.wheelhouse is not None:
            lines.append(f"COPY {WHEELHOUSE_DIR}/ {BUILD_DIR}/{WHEELHOUSE_DIR}/")
        elif settings.build.ca_bundle:
            lines.append(f"COPY {CA_FILE} {BUILD_DIR}/{CA_FILE}")
        lines += [
            # Older runtime images left /opt/venv to root; the build user must own it. Only
            # what it does not own yet is changed: a chown of every file copies the whole
            # venv into a new layer (minutes of I/O for a large flavor) for nothing.
            f"RUN find /opt/venv \\( ! -user {uid} -o ! -group {gid} \\)"
            f" -exec chown -h {BUILD_USER} {{}} +",
            f"COPY requirements.txt {BUILD_DIR}/requirements.txt",
            f"USER {BUILD_USER}",
            f"RUN {pip_command(settings.build)}",
        ]
    # Before the code, so that a code-only version finds them in the engine's cache: each
    # of these steps after the code would create and commit a container (about 50 ms
    # each). A version's image is found by its tag, which names the plugin and version.
    lines += [f"USER {RUN_USER}", f"LABEL {json.dumps(IMAGE_LABEL)}={json.dumps('true')}"]
    # Extracted as root, whatever USER says: files 0644 and folders 0755 (the archives'
    # modes, ``write_tar_gz``), so runs read the code and cannot change it.
    lines.append(f"ADD source.tar.gz {BYTECODE_FILE} {PLUGIN_CODE}")
    return "\n".join(lines) + "\n"


def build_phase(instruction: str) -> str | None:
    """The step that the Dockerfile ``instruction`` starts (see ``dockerfile``), or None
    when it belongs to the step before it."""
    if instruction.startswith("FROM "):
        return PREPARE_STEP
    if instruction.startswith("RUN ") and "python3 -m pip install" in instruction:
        return REQUIREMENTS_STEP
    if instruction.startswith("ADD source.tar.gz "):
        return CODE_STEP
    return None


def context_archive(settings: Settings, build: BuildContext) -> bytes:
    """The build context: Dockerfile, requirements, CA bundle or wheelhouse, plugin source."""
    files: dict[str, bytes] = {
        "Dockerfile": dockerfile(settings, build.has_requirements, build.runtime).encode(),
        "source.tar.gz": build.source,
        BYTECODE_FILE: _tar({**build.bytecode, VERSION_FILE: f"{build.version_id}\n".encode()}),
    }
    if build.has_requirements:
        files["requirements.txt"] = build.requirements.encode()
        if settings.build.wheelhouse is not None:
            files.update(_wheelhouse_files(settings.build.wheelhouse))
        elif settings.build.ca_bundle:
            files[CA_FILE] = settings.build.ca_bundle.read_bytes()
    return _tar(files)


def _tar(files: Mapping[str, bytes]) -> bytes:
    """An uncompressed tar of ``files``, each 0644."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, content in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size = len(content)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def _wheelhouse_files(folder: Path) -> dict[str, bytes]:
    """The wheelhouse's files (top level only: pip's --find-links does not recurse)."""
    if not folder.is_dir():
        raise BuildFailed(
            f"the wheelhouse {folder} (EXECUTOR_BUILD_WHEELHOUSE) is not a folder: create it "
            "with 'pip download -d' or unset the setting"
        )
    files = {
        f"{WHEELHOUSE_DIR}/{path.name}": path.read_bytes()
        for path in sorted(folder.iterdir())
        if path.is_file()
    }
    if sum(len(content) for content in files.values()) > MAX_WHEELHOUSE_BYTES:
        raise BuildFailed(f"the wheelhouse {folder} is over 2 GiB: keep only the wheels needed")
    # An empty folder still needs an entry so that COPY finds it.
    return files or {f"{WHEELHOUSE_DIR}/.keep": b""}
