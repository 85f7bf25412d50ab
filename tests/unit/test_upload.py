"""Uploads: safe unpacking, static checks and the reproducible source archive.

Every bad archive is built here, in memory, so each refusal is pinned to its exact class,
code, message, file and line.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import random
import stat
import tarfile
import tracemalloc
import warnings
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from executor.errors import PluginRejected, UploadTooLarge
from executor.intake.upload import (
    PluginSource,
    UploadLimits,
    pack_directory,
    read_upload,
    source_archive,
)

MiB = 1024 * 1024
MAIN = b"""\
from plugin_runtime import PluginCore


class PluginHandler(PluginCore):
    def on_submit(self, label, asset_id):
        self.logger.info("submitted %s", asset_id)

    async def on_review(self, label, asset_id):
        pass
"""
HELPERS = b"def check(label):\n    return True\n"
REQUIREMENTS = b"requests==2.32.3\n"
PLUGIN = {
    "main.py": MAIN,
    "requirements.txt": REQUIREMENTS,
    "qa/__init__.py": b"",
    "qa/rules.py": b"from .helpers import check\n",
    "qa/helpers.py": HELPERS,
}

Entry = tuple[str, bytes] | tuple[str, bytes, int]  # name, content[, unix mode for zip]


def make_zip(entries: Sequence[Entry]) -> bytes:
    buffer = io.BytesIO()
    with warnings.catch_warnings(), zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        warnings.simplefilter("ignore")  # zipfile warns about the duplicates we build on purpose
        for name, content, *mode in entries:
            info = zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = (mode[0] if mode else stat.S_IFREG | 0o644) << 16
            zf.writestr(info, content)
    return buffer.getvalue()


def make_tar(
    entries: Sequence[tuple[str, bytes] | tarfile.TarInfo], *, compressed: bool = True
) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz" if compressed else "w") as tf:
        for entry in entries:
            if isinstance(entry, tarfile.TarInfo):
                tf.addfile(entry)
                continue
            name, content = entry
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tf.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def special(name: str, kind: bytes, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    return info


def handler_main(body: str) -> bytes:
    return f"class PluginHandler:\n{body}".encode()


# --------------------------------------------------------------------------- refusals


@dataclass(frozen=True)
class Refusal:
    id: str
    data: Callable[[], bytes]
    error: type[PluginRejected]
    message: str
    file: str | None
    line: int | None = None
    filename: str = "plugin.zip"
    limits: UploadLimits = field(default_factory=UploadLimits)


# A Latin-1 "café.py" as an old archiver writes it: the byte 0xe9 is not UTF-8; tarfile
# decodes it to the lone surrogate U+DCE9.
LATIN1_NAME = b"caf\xe9.py".decode("utf-8", "surrogateescape")
NAME_NOT_UTF8 = (
    "Archive entry '{}' has a name that is not valid UTF-8: rename the file with a UTF-8 "
    "name (or re-create the archive on a system that writes UTF-8 names) and upload again."
)


def _bad_crc() -> bytes:
    # Stored entries keep the text as is: change one byte of it so its CRC no longer matches.
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("main.py", MAIN)
    data = bytearray(buffer.getvalue())
    data[data.index(b"PluginCore")] = ord("X")
    return bytes(data)


def _zip_headers(data: bytes, name: bytes) -> tuple[int, int]:
    """Offsets of the local and the central-directory header of member ``name``."""
    local = data.find(b"PK\x03\x04")
    while data[local + 30 : local + 30 + len(name)] != name:
        local = data.find(b"PK\x03\x04", local + 4)
    central = data.find(b"PK\x01\x02")
    while data[central + 46 : central + 46 + len(name)] != name:
        central = data.find(b"PK\x01\x02", central + 4)
    return local, central


def _encrypted(data: bytes) -> bytes:
    """Set the 'encrypted' flag bit of the first member (zipfile cannot write one)."""
    patched = bytearray(data)
    local, central = _zip_headers(data, b"main.py")
    patched[local + 6] |= 0x1
    patched[central + 8] |= 0x1
    return bytes(patched)


def _tar_truncated() -> bytes:
    return make_tar([("main.py", MAIN)], compressed=False)[:700]


NOT_UTF8 = "helpers.py, line 2: the file is not UTF-8 text. Save it as UTF-8 and upload again."
NO_HANDLERS = (
    "main.py, line 4: class PluginHandler defines none of the handlers on_submit, on_review, "
    "on_custom_interface_click, on_send_back_to_queue or on_event. Add at least one of them "
    "as a method and upload again."
)
NO_HANDLERS_IN_BASE = (
    "main.py, line 4: class PluginHandler defines none of the handlers on_submit, on_review, "
    "on_custom_interface_click, on_send_back_to_queue or on_event, nor do its base classes "
    "from the plugin's own modules (bases from elsewhere are not read: Base). Add at least one "
    "of them as a method and upload again."
)
NO_CLASS = (
    "main.py has no top-level 'class PluginHandler': define it, for example "
    "'class PluginHandler(PluginCore):' with an on_submit method, and upload again."
)
TOO_BIG_1K = (
    "The archive unpacks to more than 1 KiB: remove large files (data, models, virtual "
    "environments) and upload again."
)
ABSOLUTE = (
    "Archive entry '{}' is an absolute path: archive the plugin folder with relative paths "
    "and upload again."
)
DOTDOT = (
    "Archive entry '{}' contains a '..' component: archive the plugin folder with relative "
    "paths and upload again."
)
SYMLINK = (
    "Archive entry '{}' is a symbolic link: replace it with the file it points to and upload again."
)
DAMAGED = "the archive is damaged: {}. Re-create 'plugin.zip' and upload again."

REFUSALS = [
    Refusal(
        "archive-too-large",
        lambda: b"PK\x03\x04" + bytes(2044),  # never opened: it would be "damaged" otherwise
        UploadTooLarge,
        "The upload 'plugin.zip' is 2048 bytes, over the 1 KiB limit: leave out data files, "
        "caches and virtual environments and upload again.",
        "plugin.zip",
        limits=UploadLimits(max_archive_bytes=1024),
    ),
    Refusal(
        "too-many-entries",
        lambda: make_zip([("main.py", MAIN), ("a.py", b""), ("b.py", b""), ("c.py", b"")]),
        PluginRejected,
        "The archive has more than 3 entries: remove unneeded files (data, caches, virtual "
        "environments) and upload again.",
        "c.py",
        limits=UploadLimits(max_entries=3),
    ),
    Refusal(
        "unpacked-too-large-zip",
        lambda: make_zip([("main.py", MAIN), ("data.bin", bytes(2000))]),
        UploadTooLarge,
        TOO_BIG_1K,
        "data.bin",
        limits=UploadLimits(max_unpacked_bytes=1024),
    ),
    Refusal(
        "unpacked-too-large-tar",
        lambda: make_tar([("main.py", MAIN), ("data.bin", bytes(2000))]),
        UploadTooLarge,
        TOO_BIG_1K,
        "data.bin",
        limits=UploadLimits(max_unpacked_bytes=1024),
    ),
    Refusal(
        "absolute-posix",
        lambda: make_zip([("main.py", MAIN), ("/etc/cron.d/x", b"")]),
        PluginRejected,
        ABSOLUTE.format("/etc/cron.d/x"),
        "/etc/cron.d/x",
    ),
    Refusal(
        "absolute-drive",
        lambda: make_zip([("C:\\Windows\\x.py", b"")]),
        PluginRejected,
        ABSOLUTE.format("C:\\Windows\\x.py"),
        "C:\\Windows\\x.py",
    ),
    Refusal(
        "absolute-unc",
        lambda: make_zip([("\\\\server\\share\\x.py", b"")]),
        PluginRejected,
        ABSOLUTE.format("\\\\server\\share\\x.py"),
        "\\\\server\\share\\x.py",
    ),
    Refusal(
        "absolute-tar",
        lambda: make_tar([("/tmp/x.py", b"")]),
        PluginRejected,
        ABSOLUTE.format("/tmp/x.py"),
        "/tmp/x.py",
    ),
    Refusal(
        "dotdot-zip",
        lambda: make_zip([("main.py", MAIN), ("qa/../../evil.py", b"")]),
        PluginRejected,
        DOTDOT.format("qa/../../evil.py"),
        "qa/../../evil.py",
    ),
    Refusal(
        "dotdot-backslash",
        lambda: make_zip([("..\\evil.py", b"")]),
        PluginRejected,
        DOTDOT.format("..\\evil.py"),
        "..\\evil.py",
    ),
    Refusal(
        "dotdot-tar",
        lambda: make_tar([("../evil.py", b"")]),
        PluginRejected,
        DOTDOT.format("../evil.py"),
        "../evil.py",
    ),
    Refusal(
        "symlink-tar",
        lambda: make_tar([("main.py", MAIN), special("link.py", tarfile.SYMTYPE, "/etc/passwd")]),
        PluginRejected,
        SYMLINK.format("link.py"),
        "link.py",
    ),
    Refusal(
        "symlink-zip-mode-bits",
        lambda: make_zip([("main.py", MAIN), ("link.py", b"/etc/passwd", stat.S_IFLNK | 0o777)]),
        PluginRejected,
        SYMLINK.format("link.py"),
        "link.py",
    ),
    Refusal(
        "hardlink",
        lambda: make_tar([("main.py", MAIN), special("hard.py", tarfile.LNKTYPE, "main.py")]),
        PluginRejected,
        "Archive entry 'hard.py' is a hard link: replace it with a regular file and upload again.",
        "hard.py",
    ),
    Refusal(
        "char-device",
        lambda: make_tar([special("null", tarfile.CHRTYPE)]),
        PluginRejected,
        "Archive entry 'null' is a device file: remove it and upload again.",
        "null",
    ),
    Refusal(
        "block-device",
        lambda: make_tar([special("sda", tarfile.BLKTYPE)]),
        PluginRejected,
        "Archive entry 'sda' is a device file: remove it and upload again.",
        "sda",
    ),
    Refusal(
        "fifo",
        lambda: make_tar([("main.py", MAIN), special("pipe", tarfile.FIFOTYPE)]),
        PluginRejected,
        "Archive entry 'pipe' is a FIFO (named pipe): remove it and upload again.",
        "pipe",
    ),
    Refusal(
        "fifo-zip-mode-bits",
        lambda: make_zip([("pipe", b"", stat.S_IFIFO | 0o644)]),
        PluginRejected,
        "Archive entry 'pipe' is a FIFO (named pipe): remove it and upload again.",
        "pipe",
    ),
    Refusal(
        "encrypted-zip",
        lambda: _encrypted(make_zip([("main.py", MAIN)])),
        PluginRejected,
        "Archive entry 'main.py' is encrypted: re-create the archive without a password and "
        "upload again.",
        "main.py",
    ),
    Refusal(
        "control-character",
        lambda: make_zip([("ma\nin.py", MAIN)]),
        PluginRejected,
        "Archive entry 'ma\\nin.py' has an invalid name (empty or with control characters): "
        "rename the file and upload again.",
        "ma\nin.py",
    ),
    Refusal(
        "non-utf8-name-tar-gz",
        lambda: make_tar([("main.py", MAIN), (LATIN1_NAME, b"x = 1\n")]),
        PluginRejected,
        NAME_NOT_UTF8.format("caf\\xe9.py"),
        "caf\\xe9.py",
        filename="p.tar.gz",
    ),
    Refusal(
        "non-utf8-name-plain-tar",
        lambda: make_tar([("main.py", MAIN), (LATIN1_NAME, b"x = 1\n")], compressed=False),
        PluginRejected,
        NAME_NOT_UTF8.format("caf\\xe9.py"),
        "caf\\xe9.py",
        filename="p.tar",
    ),
    Refusal(
        "non-utf8-folder-is-named-before-the-entry-count",
        lambda: make_tar([("main.py", MAIN), (f"{LATIN1_NAME}/x.py", b"")]),
        PluginRejected,
        NAME_NOT_UTF8.format("caf\\xe9.py/x.py"),
        "caf\\xe9.py/x.py",
        limits=UploadLimits(max_entries=1),
    ),
    Refusal(
        "damaged-truncated-zip",
        lambda: make_zip([("main.py", MAIN)])[:60],
        PluginRejected,
        DAMAGED.format("File is not a zip file"),
        "plugin.zip",
    ),
    Refusal(
        "damaged-bad-crc",
        _bad_crc,
        PluginRejected,
        DAMAGED.format("Bad CRC-32 for file 'main.py'"),
        "main.py",
    ),
    Refusal(
        "damaged-truncated-tgz",
        lambda: make_tar([("main.py", MAIN)])[:40],
        PluginRejected,
        DAMAGED.format("Compressed file ended before the end-of-stream marker was reached"),
        "plugin.zip",
    ),
    Refusal(
        "damaged-truncated-tar",
        _tar_truncated,
        PluginRejected,
        DAMAGED.format("unexpected end of data"),
        "main.py",
    ),
    Refusal(
        "duplicate-zip",
        lambda: make_zip([("main.py", MAIN), ("main.py", MAIN)]),
        PluginRejected,
        "Archive entry 'main.py' appears more than once: keep one copy and upload again.",
        "main.py",
    ),
    Refusal(
        "duplicate-after-normalizing",
        lambda: make_tar([("main.py", MAIN), ("./main.py", MAIN)]),
        PluginRejected,
        "Archive entry './main.py' appears more than once: keep one copy and upload again.",
        "./main.py",
    ),
    Refusal(
        "file-and-folder",
        lambda: make_zip([("main.py", MAIN), ("qa", b""), ("qa/rules.py", b"")]),
        PluginRejected,
        "Archive entry 'qa' is both a file and a folder: rename one of them and upload again.",
        "qa",
    ),
    Refusal(
        "not-utf8",
        lambda: make_zip([("main.py", MAIN), ("helpers.py", b"# ok\nname = '\xe9t\xe9'\n")]),
        PluginRejected,
        NOT_UTF8,
        "helpers.py",
        2,
    ),
    Refusal(
        "syntax-error",
        lambda: make_zip([("main.py", b"import os\n\ndef f(:\n    pass\n")]),
        PluginRejected,
        "main.py, line 3: invalid syntax. Fix the syntax error and upload again.",
        "main.py",
        3,
    ),
    Refusal(
        "syntax-error-in-sub-package",
        lambda: make_tar([("main.py", MAIN), ("qa/rules.py", b"x = (\n")]),
        PluginRejected,
        "qa/rules.py, line 1: '(' was never closed. Fix the syntax error and upload again.",
        "qa/rules.py",
        1,
    ),
    Refusal(
        "null-byte",
        lambda: make_zip([("main.py", b"x = 1\x00\n")]),
        PluginRejected,
        "main.py: source code string cannot contain null bytes. Fix the syntax error and "
        "upload again.",
        "main.py",
    ),
    Refusal(
        "nested-too-deeply",
        lambda: make_zip([("main.py", b"x = " + b"-" * 200_000 + b"1\n")]),
        PluginRejected,
        "main.py: the code is nested too deeply to parse. Simplify it and upload again.",
        "main.py",
    ),
    Refusal(
        "no-main",
        lambda: make_zip([("app.py", MAIN), ("requirements.txt", REQUIREMENTS)]),
        PluginRejected,
        "The upload has no main.py at its root (found: app.py, requirements.txt): put main.py "
        "at the top of the plugin folder and upload again.",
        "main.py",
    ),
    Refusal(
        "no-main-many-files",
        lambda: make_zip([(f"src/m{i}.py", b"") for i in range(7)]),
        PluginRejected,
        "The upload has no main.py at its root (found: src/m0.py, src/m1.py, src/m2.py, "
        "src/m3.py, src/m4.py, ...): put main.py at the top of the plugin folder and upload "
        "again.",
        "main.py",
    ),
    Refusal(
        "no-main-deeper-than-one-folder",
        lambda: make_zip([("a/b/main.py", MAIN)]),
        PluginRejected,
        "The upload has no main.py at its root (found: a/b/main.py): put main.py at the top of "
        "the plugin folder and upload again.",
        "main.py",
    ),
    Refusal(
        "empty-archive",
        lambda: make_zip([]),
        PluginRejected,
        "The upload has no main.py at its root (found no files): put main.py at the top of the "
        "plugin folder and upload again.",
        "main.py",
    ),
    Refusal(
        "no-plugin-handler",
        lambda: make_zip(
            [
                (
                    "main.py",
                    b"import typing\nif typing.TYPE_CHECKING:\n    class PluginHandler:\n"
                    b"        def on_submit(self, label, asset_id): ...\nclass Handler: ...\n",
                )
            ]
        ),
        PluginRejected,
        NO_CLASS,
        "main.py",
    ),
    Refusal(
        "plugin-handler-imported-not-defined",
        lambda: make_zip([("main.py", b"from .impl import PluginHandler\n")]),
        PluginRejected,
        NO_CLASS,
        "main.py",
    ),
    Refusal(
        "no-handlers",
        lambda: make_zip(
            [
                (
                    "main.py",
                    b"import os\n\n\nclass PluginHandler(Base):\n    def on_sumbit(self):\n"
                    b"        pass\n\n    on_review = None\n\n    def helper(self):\n"
                    b"        def on_submit(): ...\n",
                )
            ]
        ),
        PluginRejected,
        NO_HANDLERS_IN_BASE,
        "main.py",
        4,
    ),
    Refusal(
        "no-handlers-decorated-class",
        lambda: make_zip([("main.py", b"import x\n\n@x.deco\nclass PluginHandler:\n    pass\n")]),
        PluginRejected,
        NO_HANDLERS,
        "main.py",
        4,
    ),
    Refusal(
        "requirements-not-utf8",
        lambda: make_zip([("main.py", MAIN), ("requirements.txt", b"caf\xe9\n")]),
        PluginRejected,
        "requirements.txt, line 1: the file is not UTF-8 text. Save it as UTF-8 and upload again.",
        "requirements.txt",
        1,
    ),
    Refusal(
        "not-an-archive",
        lambda: b"just some notes\n",
        PluginRejected,
        "'notes.txt' is not a zip, tar.gz or tar archive, nor a .py file: upload the plugin "
        "folder as .zip or .tar.gz, or a single .py file.",
        "notes.txt",
        filename="notes.txt",
    ),
    Refusal(
        "named-zip-but-is-not",
        lambda: MAIN,
        PluginRejected,
        "'plugin.zip' is not a zip, tar.gz or tar archive, nor a .py file: upload the plugin "
        "folder as .zip or .tar.gz, or a single .py file.",
        "plugin.zip",
    ),
    Refusal(
        "single-py-syntax-error",
        lambda: b"class PluginHandler:\n    def on_submit(self\n",
        PluginRejected,
        "main.py, line 2: '(' was never closed. Fix the syntax error and upload again.",
        "main.py",
        2,
        filename="my_plugin.py",
    ),
]


@pytest.mark.parametrize("case", REFUSALS, ids=[case.id for case in REFUSALS])
def test_refusals(case: Refusal) -> None:
    with pytest.raises(PluginRejected) as caught:
        read_upload(case.filename, case.data(), case.limits)

    error = caught.value
    assert type(error) is case.error
    assert error.code == ("upload_too_large" if case.error is UploadTooLarge else "plugin_rejected")
    assert error.message == case.message
    assert (error.file, error.line) == (case.file, case.line)


def test_refusal_body_names_the_file_and_line() -> None:
    with pytest.raises(PluginRejected) as caught:
        read_upload("p.zip", make_zip([("main.py", b"import os\n\ndef f(:\n    pass\n")]))

    assert caught.value.status_code == 422
    assert caught.value.to_dict() == {
        "code": "plugin_rejected",
        "message": "main.py, line 3: invalid syntax. Fix the syntax error and upload again.",
        "file": "main.py",
        "line": 3,
    }


def test_user_code_is_never_run(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    main = MAIN + f"\nopen({str(marker)!r}, 'w').write('ran')\nraise SystemExit(3)\n".encode()

    source = read_upload("p.zip", make_zip([("main.py", main), ("qa/x.py", main)]))

    assert source.handlers == ("onReview", "onSubmit")
    assert not marker.exists()


def test_every_damaged_archive_is_refused_never_crashes() -> None:
    """Random byte flips and cuts of good archives: only PluginRejected ever comes out."""
    rng = random.Random(20240101)
    files = list(PLUGIN.items())
    originals = [make_zip(files), make_tar(files), make_tar(files, compressed=False)]
    for original in originals:
        for _ in range(300):
            data = bytearray(original)
            for _ in range(rng.randint(1, 4)):
                data[rng.randrange(len(data))] = rng.randrange(256)
            if rng.random() < 0.3:
                data = data[: rng.randrange(len(data))]
            with contextlib.suppress(PluginRejected):
                read_upload("p.zip", bytes(data))


# --------------------------------------------------------------------------- bombs


@pytest.fixture(scope="module")
def zip_bomb() -> bytes:
    """One member of 200 MiB of zeros, written by streaming: about 200 KB compressed."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        zf.writestr("main.py", MAIN)
        with zf.open("weights.bin", "w", force_zip64=True) as member:
            zeros = bytes(MiB)
            for _ in range(200):
                member.write(zeros)
    data = buffer.getvalue()
    assert len(data) < MiB
    return data


def test_zip_bomb_is_stopped_just_past_a_small_limit(zip_bomb: bytes) -> None:
    tracemalloc.start()
    try:
        with pytest.raises(UploadTooLarge) as caught:
            read_upload("bomb.zip", zip_bomb, UploadLimits(max_unpacked_bytes=MiB))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()

    assert caught.value.file == "weights.bin"
    assert caught.value.message == (
        "The archive unpacks to more than 1 MiB: remove large files (data, models, virtual "
        "environments) and upload again."
    )
    assert peak < 8 * MiB


def test_zip_bomb_with_default_limits_keeps_memory_low(zip_bomb: bytes) -> None:
    tracemalloc.start()
    try:
        with pytest.raises(UploadTooLarge) as caught:
            read_upload("bomb.zip", zip_bomb)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()

    assert caught.value.code == "upload_too_large"
    assert caught.value.file == "weights.bin"
    assert "more than 50 MiB" in caught.value.message
    assert peak < 64 * MiB


def test_lying_zip_header_sizes_are_not_trusted() -> None:
    """The headers say data.bin holds 10 bytes; it inflates to 2 KiB: refused, never trusted."""
    data = bytearray(make_zip([("main.py", MAIN), ("data.bin", bytes(2048))]))
    local, central = _zip_headers(bytes(data), b"data.bin")
    data[local + 22 : local + 26] = (10).to_bytes(4, "little")
    data[central + 24 : central + 28] = (10).to_bytes(4, "little")

    with pytest.raises(PluginRejected) as caught:
        read_upload("p.zip", bytes(data), UploadLimits(max_unpacked_bytes=1024))

    assert caught.value.message == DAMAGED.format("Bad CRC-32 for file 'data.bin'").replace(
        "plugin.zip", "p.zip"
    )
    assert caught.value.file == "data.bin"


def test_zip_header_claiming_huge_sizes_is_counted_by_real_bytes() -> None:
    data = bytearray(make_zip([("main.py", MAIN), ("data.bin", bytes(2048))]))
    local, central = _zip_headers(bytes(data), b"data.bin")
    data[local + 22 : local + 26] = (10**9).to_bytes(4, "little")
    data[central + 24 : central + 28] = (10**9).to_bytes(4, "little")

    with pytest.raises(PluginRejected) as caught:
        read_upload("p.zip", bytes(data))

    assert caught.value.message == (
        "the archive is damaged: 'data.bin' is 2048 bytes but its header says 1000000000. "
        "Re-create 'p.zip' and upload again."
    )
    assert caught.value.file == "data.bin"


def test_tar_gz_bomb_is_stopped() -> None:
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb") as gz, tarfile.open(fileobj=gz, mode="w|") as tf:
        info = tarfile.TarInfo("weights.bin")
        info.size = 8 * MiB
        tf.addfile(info, io.BytesIO(bytes(info.size)))

    with pytest.raises(UploadTooLarge) as caught:
        read_upload("bomb.tar.gz", buffer.getvalue(), UploadLimits(max_unpacked_bytes=MiB))

    assert caught.value.file == "weights.bin"


def test_huge_pax_header_is_cut_off() -> None:
    """tarfile reads PAX headers whole: the raw stream is capped so they cannot inflate."""
    info = tarfile.TarInfo("main.py")
    info.size = len(MAIN)
    info.pax_headers = {"comment": "x" * (8 * MiB)}
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", format=tarfile.PAX_FORMAT) as tf:
        tf.addfile(info, io.BytesIO(MAIN))

    with pytest.raises(UploadTooLarge) as caught:
        read_upload("pax.tar.gz", buffer.getvalue(), UploadLimits(max_unpacked_bytes=MiB))

    assert caught.value.file == "pax.tar.gz"


# --------------------------------------------------------------------------- good uploads


def test_single_python_file_becomes_main() -> None:
    source = read_upload("my_plugin.py", MAIN)

    assert source == PluginSource(
        files={"main.py": MAIN},
        handlers=("onReview", "onSubmit"),
        requirements="",
        sha256=source.sha256,
    )
    assert len(source.sha256) == 64


def test_zip_of_a_folder_is_stripped_of_its_top_level_folder() -> None:
    data = make_zip(
        [("my-plugin/", b"", stat.S_IFDIR | 0o755)]
        + [(f"my-plugin/{path}", content) for path, content in PLUGIN.items()]
        + [("__MACOSX/my-plugin/._main.py", b"\x00\x05\x16\x07binary")]
    )

    source = read_upload("my-plugin.zip", data)

    assert source.files == dict(sorted(PLUGIN.items()))
    assert source.requirements == REQUIREMENTS.decode()


def test_tar_gz_with_sub_package_and_requirements() -> None:
    data = make_tar(
        [special(".", tarfile.DIRTYPE), special("./qa", tarfile.DIRTYPE)]
        + [(f"./{path}", content) for path, content in PLUGIN.items()]
    )

    source = read_upload("plugin.tar.gz", data)

    assert list(source.files) == sorted(PLUGIN)
    assert source.files["qa/helpers.py"] == HELPERS
    assert source.requirements == "requests==2.32.3\n"
    assert source.handlers == ("onReview", "onSubmit")


def test_plain_tar_and_kind_by_content_not_name() -> None:
    tar = make_tar(list(PLUGIN.items()), compressed=False)
    zipped = make_zip(list(PLUGIN.items()))

    assert read_upload("plugin.zip", tar).files == dict(sorted(PLUGIN.items()))
    assert read_upload("plugin.py", zipped).files == dict(sorted(PLUGIN.items()))


@pytest.mark.parametrize(
    ("body", "handlers"),
    [
        ("    def on_submit(self, label, asset_id): ...\n", ("onSubmit",)),
        ("    async def on_event(self, payload): ...\n", ("onEvent",)),
        (
            "    def on_submit(self, label, asset_id): ...\n"
            "    def on_review(self, label, asset_id): ...\n"
            "    async def on_custom_interface_click(self, label, asset_id): ...\n"
            "    def on_send_back_to_queue(self, asset_id): ...\n"
            "    def on_event(self, payload): ...\n"
            "    def on_unknown(self): ...\n"
            "    def helper(self): ...\n",
            ("onCustomInterfaceClick", "onEvent", "onReview", "onSendBackToQueue", "onSubmit"),
        ),
    ],
    ids=["submit", "async-event", "all"],
)
def test_handlers_are_read_from_the_class_body(body: str, handlers: tuple[str, ...]) -> None:
    assert read_upload("main.py", handler_main(body)).handlers == handlers


def test_last_plugin_handler_definition_wins() -> None:
    main = handler_main("    def on_submit(self, l, a): ...\n") + handler_main(
        "    def on_review(self, l, a): ...\n"
    )

    assert read_upload("main.py", main).handlers == ("onReview",)


def test_utf8_bom_is_accepted() -> None:
    assert read_upload("main.py", b"\xef\xbb\xbf" + MAIN).handlers == ("onReview", "onSubmit")


def test_sha256_is_the_same_for_zip_and_tar_of_the_same_files() -> None:
    files = list(PLUGIN.items())

    from_zip = read_upload("p.zip", make_zip(files[::-1]))
    from_tar = read_upload("p.tar.gz", make_tar(files))
    changed = read_upload("p.zip", make_zip([*files[:-1], ("qa/helpers.py", HELPERS + b"#\n")]))

    assert from_zip.sha256 == from_tar.sha256
    assert changed.sha256 != from_zip.sha256


def test_sha256_does_not_confuse_path_and_content_boundaries() -> None:
    one = read_upload("p.zip", make_zip([("main.py", MAIN), ("ab.py", b"")]))
    two = read_upload("p.zip", make_zip([("main.py", MAIN), ("a", b"b.py")]))

    assert one.sha256 != two.sha256


def test_source_archive_is_reproducible() -> None:
    files = list(PLUGIN.items())
    first = read_upload("p.zip", make_zip(files))
    second = read_upload("p.tar.gz", make_tar(files[::-1]))

    archive = source_archive(first)

    assert archive == source_archive(second)
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tf:
        members = tf.getmembers()
        assert [m.name for m in members] == sorted(PLUGIN)
        assert {(m.mtime, m.uid, m.gid, m.uname, m.gname, m.mode) for m in members} == {
            (0, 0, 0, "", "", 0o644)
        }
        assert all(m.isreg() for m in members)
    assert read_upload("context.tar.gz", archive) == first


def test_pack_directory_round_trip(tmp_path: Path) -> None:
    for path, content in PLUGIN.items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_bytes(content)
    for junk in ("__pycache__/main.cpython-311.pyc", ".git/HEAD", ".venv/bin/python", "qa/x.pyc"):
        (tmp_path / junk).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / junk).write_bytes(b"\x00junk")

    packed = pack_directory(tmp_path)
    source = read_upload("plugin.tar.gz", packed)

    assert source.files == dict(sorted(PLUGIN.items()))
    assert source.handlers == ("onReview", "onSubmit")
    assert packed == pack_directory(tmp_path)


def test_pack_directory_refuses_symbolic_links(tmp_path: Path) -> None:
    (tmp_path / "main.py").write_bytes(MAIN)
    (tmp_path / "secrets.py").symlink_to("/etc/passwd")

    with pytest.raises(PluginRejected) as caught:
        pack_directory(tmp_path)

    assert caught.value.message == (
        "secrets.py is a symbolic link: replace it with the real file or folder and pack again."
    )
    assert caught.value.file == "secrets.py"


def test_pack_directory_needs_a_folder(tmp_path: Path) -> None:
    missing = tmp_path / "nope"

    with pytest.raises(PluginRejected) as caught:
        pack_directory(missing)

    assert caught.value.message == (
        f"{missing} is not a folder: pass the plugin folder (the one holding main.py)."
    )
