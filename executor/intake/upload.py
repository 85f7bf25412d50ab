"""Plugin uploads: from the uploaded bytes to a checked ``PluginSource``, and back to tar.gz.

``read_upload`` accepts a zip, a tar.gz (or plain tar) of the plugin folder, or one ``.py``
file that becomes ``main.py``; the kind is told by content, not by name. It unpacks safely
(``executor.intake.archive``), then checks the Python statically
(``executor.intake.pysource``): every
``.py`` parses, ``main.py`` defines a top-level ``class PluginHandler`` with a handler.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from executor.errors import PluginRejected, RequirementsForbidden, UploadTooLarge
from executor.intake import archive, manifest, pysource
from executor.intake import requirements as requirements_policy

__all__ = [
    "PluginSource",
    "UploadLimits",
    "check_files",
    "pack_directory",
    "read_upload",
    "source_archive",
    "unpack_upload",
]

MAIN_MODULE = pysource.MAIN_MODULE
REQUIREMENTS_FILE = requirements_policy.REQUIREMENTS_FILE
# Left out by pack_directory: caches, version control and virtual environments.
PACK_SKIPPED_DIRS = frozenset({"__pycache__", ".git", ".venv"})
PACK_SKIPPED_SUFFIXES = (".pyc",)
_FOUND_SHOWN = 5  # how many found files a "no main.py" message lists
# The files the checks parse, each capped at max_file_bytes before it is parsed.
PARSED_FILES = (REQUIREMENTS_FILE, manifest.MANIFEST_FILE)
PARSED_SUFFIX = ".py"


@dataclass(frozen=True)
class UploadLimits:
    """Caps applied to one upload."""

    max_entries: int = 1000
    max_archive_bytes: int = 10 * 1024 * 1024
    max_unpacked_bytes: int = 50 * 1024 * 1024
    # Operator setting (upload_max_file_bytes): each parsed file; ast.parse needs ~500x it.
    max_file_bytes: int = 1024 * 1024
    # Operator setting (build_allow_url_requirements): https/git+https requirement lines.
    allow_url_requirements: bool = False
    # Operator setting (build_allow_requirements): false refuses any requirements.txt.
    allow_requirements: bool = True


@dataclass(frozen=True)
class PluginSource:
    """A checked plugin: its files, the events it handles, its requirements, its digest."""

    files: dict[str, bytes]  # posix relative path -> content; "main.py" at the root
    handlers: tuple[str, ...]  # wire names found on PluginHandler, sorted
    requirements: str  # text of requirements.txt at the root, "" if none
    sha256: str  # hex digest over sorted (path, content) pairs: same files -> same hash
    runtime: str | None = None  # the flavor plugin.toml names, if any


def read_upload(filename: str, data: bytes, limits: UploadLimits = UploadLimits()) -> PluginSource:
    """Unpack and check an upload; raises ``PluginRejected`` / ``UploadTooLarge`` on refusal.

    ``requirements.txt`` must pass ``executor.intake.requirements`` (refusals name its line).

    ``filename`` is the name the client gave; it only decides whether bytes that are no
    archive are accepted as a single Python file (when it ends with ``.py``).

    In process: the server checks uploads in bounded worker processes instead
    (``executor.intake.checker``), which call ``unpack_upload`` then ``check_files``.
    """
    return check_files(unpack_upload(filename, data, limits), limits)


def unpack_upload(filename: str, data: bytes, limits: UploadLimits) -> dict[str, bytes]:
    """The files of an upload (its archive unpacked safely, or one .py as ``main.py``)."""
    if len(data) > limits.max_archive_bytes:
        raise UploadTooLarge(
            f"The upload '{filename}' is {len(data)} bytes, over the "
            f"{archive.human_size(limits.max_archive_bytes)} limit: leave out data files, "
            "caches and virtual environments and upload again.",
            file=filename,
            limit=limits.max_archive_bytes,
        )
    return _files_of(filename, data, limits)


def check_files(files: dict[str, bytes], limits: UploadLimits) -> PluginSource:
    """Check unpacked files statically: sizes, ``main.py`` and its handlers, requirements."""
    _check_file_sizes(files, limits.max_file_bytes)
    if MAIN_MODULE not in files:
        raise PluginRejected(
            f"The upload has no {MAIN_MODULE} at its root ({_found(files)}): put {MAIN_MODULE} "
            "at the top of the plugin folder and upload again.",
            file=MAIN_MODULE,
        )
    handlers = pysource.find_handlers(files)
    requirements = files.get(REQUIREMENTS_FILE)
    if requirements is not None and not limits.allow_requirements:
        raise RequirementsForbidden(
            f"The upload has a {REQUIREMENTS_FILE}, and this executor installs no "
            "requirements (EXECUTOR_BUILD_ALLOW_REQUIREMENTS=false): remove it and use the "
            "packages of a runtime flavor (GET /v1/runtimes lists them).",
            file=REQUIREMENTS_FILE,
        )
    return PluginSource(
        files=files,
        handlers=handlers,
        requirements=requirements_policy.check_requirements(
            requirements, allow_urls=limits.allow_url_requirements
        )
        if requirements
        else "",
        sha256=source_digest(files),
        runtime=manifest.manifest_runtime(files),
    )


def pack_directory(path: Path) -> bytes:
    """A tar.gz of the plugin folder at ``path``, ready for upload.

    Skips ``__pycache__``, ``.git``, ``.venv`` and ``*.pyc``; refuses symbolic links and
    special files (the upload would refuse them) with ``PluginRejected``.
    """
    root = Path(path)
    if not root.is_dir():
        raise PluginRejected(
            f"{root} is not a folder: pass the plugin folder (the one holding {MAIN_MODULE}).",
            file=str(root),
        )
    files: dict[str, bytes] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        dirnames[:] = sorted(name for name in dirnames if name not in PACK_SKIPPED_DIRS)
        for name in dirnames:
            _check_packable(root, here / name)
        for name in sorted(filenames):
            if not name.endswith(PACK_SKIPPED_SUFFIXES):
                file = here / name
                _check_packable(root, file)
                files[file.relative_to(root).as_posix()] = file.read_bytes()
    return archive.write_tar_gz(files)


def source_archive(source: PluginSource) -> bytes:
    """The reproducible tar.gz of ``source.files`` (sorted, mtime 0, uid 0): same files,
    same bytes. The builder writes it out as the code part of the build context."""
    return archive.write_tar_gz(source.files)


def source_digest(files: dict[str, bytes]) -> str:
    """SHA-256 over the sorted (path, content) pairs, each length-prefixed (unambiguous)."""
    digest = hashlib.sha256()
    for path in sorted(files):
        for part in (path.encode("utf-8"), files[path]):
            digest.update(len(part).to_bytes(8, "big"))
            digest.update(part)
    return digest.hexdigest()


def _files_of(filename: str, data: bytes, limits: UploadLimits) -> dict[str, bytes]:
    kind = archive.archive_kind(data)
    if kind is None:
        if not filename.lower().endswith(".py"):
            raise PluginRejected(
                f"'{filename}' is not a zip, tar.gz or tar archive, nor a .py file: upload the "
                "plugin folder as .zip or .tar.gz, or a single .py file.",
                file=filename,
            )
        return {MAIN_MODULE: data}
    files = archive.unpack(
        filename,
        data,
        kind,
        max_entries=limits.max_entries,
        max_unpacked_bytes=limits.max_unpacked_bytes,
    )
    return dict(sorted(_strip_single_folder(files).items()))


def _strip_single_folder(files: dict[str, bytes]) -> dict[str, bytes]:
    """``plugin/main.py, plugin/x.py`` -> ``main.py, x.py`` (people zip the folder itself)."""
    if MAIN_MODULE in files or not files:
        return files
    tops = {path.split("/", 1)[0] for path in files}
    top = tops.pop()
    if tops or f"{top}/{MAIN_MODULE}" not in files:
        return files
    return {path.removeprefix(f"{top}/"): content for path, content in files.items()}


def _check_file_sizes(files: dict[str, bytes], limit: int) -> None:
    """UploadTooLarge for the first parsed file over ``limit``: refused before parsing, since
    parsing needs hundreds of times the file's size in memory."""
    for path, content in files.items():
        parsed = path.endswith(PARSED_SUFFIX) or path in PARSED_FILES
        if parsed and len(content) > limit:
            raise UploadTooLarge(
                f"{path} is {len(content)} bytes, over the {archive.human_size(limit)} limit "
                "for one source file (EXECUTOR_UPLOAD_MAX_FILE_BYTES): move data out of the "
                "code (into a data file read at run time) or split the module, and upload "
                "again.",
                file=path,
                limit=limit,
            )


def _found(files: dict[str, bytes]) -> str:
    if not files:
        return "found no files"
    shown = ", ".join(sorted(files)[:_FOUND_SHOWN])
    return f"found: {shown}, ..." if len(files) > _FOUND_SHOWN else f"found: {shown}"


def _check_packable(root: Path, path: Path) -> None:
    relative = path.relative_to(root).as_posix()
    if path.is_symlink():
        raise PluginRejected(
            f"{relative} is a symbolic link: replace it with the real file or folder and "
            "pack again.",
            file=relative,
        )
    if not (path.is_file() or path.is_dir()):
        raise PluginRejected(
            f"{relative} is not a regular file or folder: remove it and pack again.",
            file=relative,
        )
