"""Safe, in-memory unpacking of uploaded plugin archives (zip, tar.gz, plain tar).

Nothing touches the disk and nothing from the archive is trusted: every entry name is
checked (no absolute paths, no ``..``, no links, devices or FIFOs), the number of entries is
capped, and the unpacked size is counted while each member is read in chunks, so a
decompression bomb is stopped just past the limit instead of being inflated into memory.
Third-party errors (``zipfile``, ``tarfile``, ``gzip``, ``zlib``) are mapped here to
``PluginRejected``.
"""

from __future__ import annotations

import gzip
import io
import lzma
import re
import stat
import struct
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Generator
from contextlib import closing
from dataclasses import dataclass
from functools import partial
from typing import IO, Literal, Protocol

from executor.errors import PluginRejected, UploadTooLarge

__all__ = ["ArchiveKind", "archive_kind", "human_size", "unpack", "write_tar_gz"]

ArchiveKind = Literal["zip", "tar.gz", "tar"]

READ_CHUNK_BYTES = 64 * 1024
# A tar stream carries a header (and maybe a PAX or long-name header) plus padding per
# entry: allow this much on top of the unpacked limit before the raw stream is cut off.
TAR_OVERHEAD_PER_ENTRY_BYTES = 4 * 1024
TAR_OVERHEAD_BYTES = 64 * 1024

_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # local file header; empty archive
_GZIP_MAGIC = b"\x1f\x8b"
_TAR_MAGIC_OFFSET = 257
_DRIVE = re.compile(r"^[A-Za-z]:")
_SURROGATES_FIRST, _SURROGATES_LAST = 0xD800, 0xDFFF
# What zipfile, tarfile, gzip and the decompressors raise on damaged input.
_DAMAGED = (
    zipfile.BadZipFile,
    tarfile.TarError,
    zlib.error,
    lzma.LZMAError,
    struct.error,
    EOFError,
    OSError,
    ValueError,
)

_Kind = Literal["file", "dir", "symlink", "hardlink", "device", "fifo", "encrypted", "other"]

_KIND_PROBLEMS: dict[str, str] = {
    "symlink": "is a symbolic link: replace it with the file it points to",
    "hardlink": "is a hard link: replace it with a regular file",
    "device": "is a device file: remove it",
    "fifo": "is a FIFO (named pipe): remove it",
    "encrypted": "is encrypted: re-create the archive without a password",
    "other": "is not a regular file or folder: remove it",
}


class _Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class _Member:
    name: str
    kind: _Kind
    open: Callable[[], IO[bytes]] | None = None
    size: int | None = None  # the size the header claims, checked after reading (zip)


def archive_kind(data: bytes) -> ArchiveKind | None:
    """The kind of archive ``data`` is, from its magic bytes; None when it is none of them."""
    if data.startswith(_ZIP_MAGIC):
        return "zip"
    if data.startswith(_GZIP_MAGIC):
        return "tar.gz"
    if data[_TAR_MAGIC_OFFSET : _TAR_MAGIC_OFFSET + 5] == b"ustar":
        return "tar"
    return None


def human_size(size: int) -> str:
    """``52428800`` -> ``"50 MiB"``; sizes that are not whole KiB or MiB stay in bytes."""
    for unit, factor in (("MiB", 1024 * 1024), ("KiB", 1024)):
        if size >= factor and size % factor == 0:
            return f"{size // factor} {unit}"
    return f"{size} bytes"


def unpack(
    filename: str, data: bytes, kind: ArchiveKind, *, max_entries: int, max_unpacked_bytes: int
) -> dict[str, bytes]:
    """The regular files of the archive: normalized posix relative path -> content.

    Folders are implied by the paths; macOS metadata (``__MACOSX/``, ``._*``) is dropped.
    Raises ``PluginRejected`` (``UploadTooLarge`` for the size limit) naming the entry.
    """
    collector = _Collector(max_entries, max_unpacked_bytes)
    where = filename
    try:
        with closing(_members(filename, data, kind, max_entries, max_unpacked_bytes)) as members:
            for member in members:
                where = member.name
                collector.add(member)
                where = filename
    except NotImplementedError as exc:  # zipfile: unknown compression method or version
        raise _unsupported(filename, where, exc) from exc
    except _DAMAGED as exc:
        detail = (str(exc) or type(exc).__name__).rstrip(".")
        raise PluginRejected(
            f"the archive is damaged: {detail}. Re-create '{filename}' and upload again.",
            file=where,
        ) from exc
    _check_file_folder_clash(collector.files)
    return collector.files


def _members(
    filename: str, data: bytes, kind: ArchiveKind, max_entries: int, max_unpacked_bytes: int
) -> Generator[_Member, None, None]:
    if kind == "zip":
        return _zip_members(data)
    raw: _Readable = io.BytesIO(data)
    if kind == "tar.gz":
        raw = gzip.GzipFile(fileobj=io.BytesIO(data), mode="rb")
    cap = max_unpacked_bytes + TAR_OVERHEAD_BYTES + (max_entries + 1) * TAR_OVERHEAD_PER_ENTRY_BYTES
    too_large = _too_large_unpacked(max_unpacked_bytes, filename)
    return _tar_members(_CappedReader(raw, cap, too_large))


def write_tar_gz(files: dict[str, bytes]) -> bytes:
    """A reproducible tar.gz of ``files``: sorted, mtime 0, uid/gid 0, mode 0644."""
    buffer = io.BytesIO()
    with (
        gzip.GzipFile(filename="", mode="wb", fileobj=buffer, mtime=0) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        for path in sorted(files):
            content = files[path]
            info = tarfile.TarInfo(path)
            info.size = len(content)
            info.mode = 0o644
            info.mtime = 0
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


class _Collector:
    """Checks each entry in turn and reads the regular files, counting every byte."""

    def __init__(self, max_entries: int, max_unpacked_bytes: int) -> None:
        self.max_entries = max_entries
        self.max_unpacked_bytes = max_unpacked_bytes
        self.entries = 0
        self.unpacked = 0
        self.files: dict[str, bytes] = {}

    def add(self, member: _Member) -> None:
        _check_utf8(member.name)  # first: every later message and field quotes the name
        self.entries += 1
        if self.entries > self.max_entries:
            raise PluginRejected(
                f"The archive has more than {self.max_entries} entries: remove unneeded files "
                "(data, caches, virtual environments) and upload again.",
                file=member.name,
            )
        path = _safe_path(member.name)
        if member.kind in _KIND_PROBLEMS:
            problem = _KIND_PROBLEMS[member.kind]
            raise PluginRejected(
                f"Archive entry '{member.name}' {problem} and upload again.", file=member.name
            )
        if member.kind == "dir" or _is_macos_metadata(path):
            return
        if path in self.files:
            raise PluginRejected(
                f"Archive entry '{member.name}' appears more than once: keep one copy and "
                "upload again.",
                file=member.name,
            )
        assert member.open is not None  # every "file" member comes with an opener
        content = self._read(member.name, member.open)
        if member.size is not None and len(content) != member.size:
            raise zipfile.BadZipFile(
                f"'{member.name}' is {len(content)} bytes but its header says {member.size}"
            )
        self.files[path] = content

    def _read(self, name: str, opener: Callable[[], IO[bytes]]) -> bytes:
        chunks: list[bytes] = []
        with opener() as stream:
            while chunk := stream.read(READ_CHUNK_BYTES):
                self.unpacked += len(chunk)
                if self.unpacked > self.max_unpacked_bytes:
                    raise _too_large_unpacked(self.max_unpacked_bytes, name)
                chunks.append(chunk)
        return b"".join(chunks)


def _unsupported(filename: str, where: str, exc: NotImplementedError) -> PluginRejected:
    if where == filename:
        return PluginRejected(
            f"'{filename}' uses a zip feature that is not supported ({exc}): re-create it "
            "with a standard zip or tar.gz tool and upload again.",
            file=filename,
        )
    return PluginRejected(
        f"Archive entry '{where}' uses a compression method that is not supported: "
        "re-create the archive with standard (deflate) compression and upload again.",
        file=where,
    )


def _too_large_unpacked(limit: int, name: str) -> UploadTooLarge:
    return UploadTooLarge(
        f"The archive unpacks to more than {human_size(limit)}: remove large files "
        "(data, models, virtual environments) and upload again.",
        file=name,
        limit=limit,
    )


def _check_utf8(name: str) -> None:
    """PluginRejected for a name tarfile could not decode as UTF-8.

    tarfile keeps such bytes as lone surrogates (``surrogateescape``), which no UTF-8 text
    (a JSON answer, the source digest, a file system path) can hold; the message shows
    them as ``\\xNN``.
    """
    if any(_SURROGATES_FIRST <= ord(char) <= _SURROGATES_LAST for char in name):
        shown = name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
        raise PluginRejected(
            f"Archive entry '{shown}' has a name that is not valid UTF-8: rename the file "
            "with a UTF-8 name (or re-create the archive on a system that writes UTF-8 "
            "names) and upload again.",
            file=shown,
        )


def _safe_path(name: str) -> str:
    """The normalized relative path of an entry name, or PluginRejected."""
    if not name or any(ord(char) < 0x20 or char == "\x7f" for char in name):
        raise PluginRejected(
            f"Archive entry {name!r} has an invalid name (empty or with control characters): "
            "rename the file and upload again.",
            file=name,
        )
    unified = name.replace("\\", "/")
    if unified.startswith("/") or _DRIVE.match(unified):
        raise PluginRejected(
            f"Archive entry '{name}' is an absolute path: archive the plugin folder with "
            "relative paths and upload again.",
            file=name,
        )
    parts = [part for part in unified.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise PluginRejected(
            f"Archive entry '{name}' contains a '..' component: archive the plugin folder with "
            "relative paths and upload again.",
            file=name,
        )
    return "/".join(parts)


def _is_macos_metadata(path: str) -> bool:
    """Finder's ``__MACOSX/`` tree and AppleDouble ``._x`` files: binary, never plugin code."""
    return path.split("/", 1)[0] == "__MACOSX" or path.rsplit("/", 1)[-1].startswith("._")


def _check_file_folder_clash(files: dict[str, bytes]) -> None:
    for path in sorted(files):
        parent = path.rsplit("/", 1)[0] if "/" in path else ""
        while parent:
            if parent in files:
                raise PluginRejected(
                    f"Archive entry '{parent}' is both a file and a folder: rename one of them "
                    "and upload again.",
                    file=parent,
                )
            parent = parent.rsplit("/", 1)[0] if "/" in parent else ""


def _zip_members(data: bytes) -> Generator[_Member, None, None]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        for info in archive.infolist():
            kind = _zip_kind(info)
            opener = partial(archive.open, info) if kind == "file" else None
            yield _Member(info.filename, kind, opener, info.file_size)


def _zip_kind(info: zipfile.ZipInfo) -> _Kind:
    mode = info.external_attr >> 16  # Unix st_mode, when the archiver recorded one
    if stat.S_ISLNK(mode):
        return "symlink"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "device"
    if stat.S_ISFIFO(mode):
        return "fifo"
    if info.is_dir() or stat.S_ISDIR(mode):
        return "dir"
    if stat.S_IFMT(mode) not in (0, stat.S_IFREG):
        return "other"
    if info.flag_bits & 0x1:
        return "encrypted"
    return "file"


def _tar_members(reader: _CappedReader) -> Generator[_Member, None, None]:
    # Stream mode ("r|") reads strictly forward through the capped reader, so even a PAX
    # or long-name header claiming gigabytes (tarfile reads those whole) stops at the cap.
    with tarfile.open(fileobj=reader, mode="r|") as archive:
        while (info := archive.next()) is not None:
            kind = _tar_kind(info)
            opener = partial(_extract, archive, info) if kind == "file" else None
            yield _Member(info.name, kind, opener)


def _tar_kind(info: tarfile.TarInfo) -> _Kind:
    if info.issym():
        return "symlink"
    if info.islnk():
        return "hardlink"
    if info.ischr() or info.isblk():
        return "device"
    if info.isfifo():
        return "fifo"
    if info.isdir():
        return "dir"
    return "file" if info.isreg() else "other"


def _extract(archive: tarfile.TarFile, info: tarfile.TarInfo) -> IO[bytes]:
    stream = archive.extractfile(info)
    if stream is None:  # isreg() members always have data; keep mypy and tarfile honest
        raise tarfile.ReadError(f"no data for {info.name}")
    return stream


class _CappedReader:
    """A forward-only reader that raises ``too_large`` rather than deliver over ``cap`` bytes."""

    def __init__(self, raw: _Readable, cap: int, too_large: UploadTooLarge) -> None:
        self._raw = raw
        self._left = cap
        self._too_large = too_large

    def read(self, size: int = -1) -> bytes:
        wanted = READ_CHUNK_BYTES if size < 0 else size
        chunk = self._raw.read(min(wanted, self._left + 1))
        self._left -= len(chunk)
        if self._left < 0:
            raise self._too_large
        return chunk

    def write(self, b: bytes) -> int:
        raise io.UnsupportedOperation("read-only")

    def tell(self) -> int:
        raise io.UnsupportedOperation("not seekable")

    def seek(self, pos: int) -> int:
        raise io.UnsupportedOperation("not seekable")

    def close(self) -> None:
        self._raw.close()
