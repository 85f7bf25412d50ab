"""requirements.txt policy: every refused form gets its exact error (file, line, why)."""

from __future__ import annotations

import io
import zipfile

import pytest

from executor.errors import PluginRejected
from executor.intake.requirements import check_requirements
from executor.intake.upload import UploadLimits, read_upload

MAIN = b"class PluginHandler:\n    def on_submit(self, label, asset_id):\n        pass\n"
SIX_HASH = "sha256:8abb2f1d86890a2dfb989f9a77cfcfd3e47c2a354b01111771326f8aa26e0254"
INDEX_ONLY = "packages come from the operator's index only"
ASK = "Publish the package there, or ask the operator to allow URL requirements"
LOCAL = (
    "plugins install packages from the index only. Write the package name and version "
    "instead (e.g. 'requests==2.32.3')"
)
SPACES_ONLY = (
    "pip splits options from a requirement at spaces only, so it would read the whole line "
    "as one invalid requirement"
)
# Names pip reads as local archives (pip/_internal/utils/filetypes.py), extras or not.
ARCHIVE_NAMES = [
    "pkg.tar.xz",
    "pkg.txz",
    "pkg.tbz",
    "pkg.tlz",
    "pkg.tar.lz",
    "pkg.tar.lzma",
    "PKG.TAR.XZ",
    "pkg.zip[extra]",
    "pkg==1.0.zip",
]
# 'Å' is C3 85 in UTF-8; read as latin-1, 0x85 (NEL) ends a line: pip sees an option line.
LATIN1_SMUGGLE = "# -*- coding: latin-1 -*-\nsix  # \u00c5--index-url https://evil.example/simple"

ACCEPTED = [
    "requests",
    "requests==2.32.3",
    "requests[socks,security]>=2.31,<3",
    "numpy ~= 1.26 ; python_version >= '3.10'",
    'pywin32==306; sys_platform == "win32"',
    f"six==1.16.0 --hash={SIX_HASH}",
    f"six==1.16.0 \\\n    --hash={SIX_HASH} --hash {SIX_HASH}",
    "# just a comment\n\n   \nattrs  # inline comment",
    "Django>=4.2,!=4.2.1",
    "zope.interface===5.0",
]


@pytest.mark.parametrize("text", ACCEPTED)
def test_plain_requirements_are_accepted(text: str) -> None:
    assert check_requirements(text.encode()) == text


REFUSED = [
    (
        "-i https://evil.example/simple",
        1,
        "the option '-i' is not allowed: the package index is chosen by the operator",
    ),
    (
        "six\n--index-url=https://evil.example/simple",
        2,
        "the option '--index-url' is not allowed: the package index is chosen by the operator",
    ),
    (
        "--extra-index-url https://evil.example/simple",
        1,
        "the option '--extra-index-url' is not allowed: the package index is chosen by the "
        "operator",
    ),
    ("-f https://evil.example/wheels", 1, f"the option '-f' is not allowed: {INDEX_ONLY}"),
    ("--find-links /tmp/wheels", 1, f"the option '--find-links' is not allowed: {INDEX_ONLY}"),
    ("-r other.txt", 1, "the option '-r' is not allowed: nested requirement files are not read"),
    ("-c constraints.txt", 1, "the option '-c' is not allowed: constraint files are not read"),
    ("-e .", 1, "the option '-e' is not allowed: editable installs are not allowed"),
    (
        "--trusted-host evil.example",
        1,
        "the option '--trusted-host' is not allowed: TLS checks cannot be turned off",
    ),
    (
        "--pre",
        1,
        "the option '--pre' is not allowed: pre-releases are only installed when a "
        "specifier names one (e.g. 'pkg==2.0b1')",
    ),
    (
        "--no-binary :all:",
        1,
        "the option '--no-binary' is not allowed: pip options cannot be set from requirements.txt",
    ),
    (
        "six==1.16.0 --global-option=--evil",
        1,
        "the option '--global-option' is not allowed: only '--hash=<algorithm>:<digest>' may "
        "follow a requirement",
    ),
    (
        "https://evil.example/pkg-1.0.tar.gz",
        1,
        f"the URL requirement 'https://evil.example/pkg-1.0.tar.gz' is not allowed: {INDEX_ONLY}. "
        f"{ASK}",
    ),
    (
        "pkg @ https://evil.example/pkg-1.0.whl",
        1,
        f"the URL requirement 'https://evil.example/pkg-1.0.whl' is not allowed: {INDEX_ONLY}. "
        f"{ASK}",
    ),
    (
        "pkg @ file:///etc/passwd",
        1,
        f"the URL requirement 'file:///etc/passwd' is not allowed: {INDEX_ONLY}. {ASK}",
    ),
    (
        "git+https://github.com/o/r.git#egg=r",
        1,
        "the version control requirement 'git+https://github.com/o/r.git#egg=r' is not allowed: "
        f"{INDEX_ONLY}. {ASK}",
    ),
    (
        "r @ git+ssh://git@github.com/o/r.git",
        1,
        "the version control requirement 'git+ssh://git@github.com/o/r.git' is not allowed: "
        f"{INDEX_ONLY}. {ASK}",
    ),
    (
        "./vendor/pkg",
        1,
        "'./vendor/pkg' is a local path: plugins install packages from the index only. Write the "
        "package name and version instead (e.g. 'requests==2.32.3')",
    ),
    (
        "/abs/pkg-1.0-py3-none-any.whl",
        1,
        "'/abs/pkg-1.0-py3-none-any.whl' is a local path: plugins install packages from the index "
        "only. Write the package name and version instead (e.g. 'requests==2.32.3')",
    ),
    (
        "pkg-1.0.tar.gz",
        1,
        "'pkg-1.0.tar.gz' is a local path: plugins install packages from the index only. Write the "
        "package name and version instead (e.g. 'requests==2.32.3')",
    ),
    (
        "six==${SIX_VERSION}",
        1,
        "'${SIX_VERSION}' asks pip to expand an environment variable, which builds never do. "
        "Write the value itself",
    ),
    (
        f"six==1.16.0\t--hash={SIX_HASH}",
        1,
        f"'--hash' follows a tab, not a space: {SPACES_ONLY}. Put a space before '--hash'",
    ),
    (
        f"six==1.16.0 \\\n\t--hash={SIX_HASH}",
        1,
        f"'--hash' follows a tab, not a space: {SPACES_ONLY}. Put a space before '--hash'",
    ),
    *[(name, 1, f"'{name}' is a local path: {LOCAL}") for name in ARCHIVE_NAMES],
    (
        "pkg.tar.xz ; python_version >= '3'",
        1,
        f"'pkg.tar.xz ; python_version >= '3'' is a local path: {LOCAL}",
    ),
    ("six @ foo", 1, f"the URL requirement 'foo' is not allowed: {INDEX_ONLY}. {ASK}"),
    (
        "six --hash=md5:d41d8cd98f00b204e9800998ecf8427e",
        1,
        "'--hash=md5:d41d8cd98f00b204e9800998ecf8427e' is not a hash pip accepts: write sha256, "
        "sha384 or sha512, a colon and the hex digest",
    ),
    (
        f"six --hash={SIX_HASH} evil",
        1,
        "'evil' after the options would be ignored by pip: only '--hash=<algorithm>:<digest>' "
        "may follow a requirement",
    ),
    (
        "six\nsix --hash='sha256:ab",
        2,
        "pip cannot split the options '--hash='sha256:ab' (No closing quotation). Fix the quoting",
    ),
    (
        LATIN1_SMUGGLE,
        1,
        "the comment declares the encoding 'latin-1': pip would decode the file with it and "
        "read other text than the UTF-8 checked here. Remove the declaration or declare utf-8",
    ),
    (
        "six\nnot a requirement!",
        2,
        "'not a requirement!' is not a valid PEP 508 requirement. Write a package name with "
        "optional extras, version and marker, e.g. 'requests[socks]>=2.31,<3'",
    ),
]


@pytest.mark.parametrize(("text", "line", "why"), REFUSED, ids=[r[0][:30] for r in REFUSED])
def test_refused_lines_name_the_line_and_why(text: str, line: int, why: str) -> None:
    with pytest.raises(PluginRejected) as caught:
        check_requirements(text.encode())
    assert caught.value.message == f"requirements.txt, line {line}: {why}."
    assert caught.value.file == "requirements.txt" and caught.value.line == line


@pytest.mark.parametrize(
    ("content", "line", "why"),
    [
        (b"six\nattrs\x00\n", 2, "the line has a NUL byte. Save the file as plain UTF-8 text"),
        (b"six\ncaf\xe9\n", 2, "the file is not UTF-8 text. Save it as UTF-8 and upload again"),
        (
            b"six\n" * 501,
            501,
            "the file has 501 lines, over the limit of 500. List only the packages the plugin "
            "imports",
        ),
    ],
    ids=["nul", "not-utf8", "too-many-lines"],
)
def test_refused_bytes(content: bytes, line: int, why: str) -> None:
    with pytest.raises(PluginRejected) as caught:
        check_requirements(content)
    assert caught.value.message == f"requirements.txt, line {line}: {why}."
    assert caught.value.line == line


def test_more_than_64_kib_is_refused() -> None:
    content = b"# " + b"x" * (64 * 1024) + b"\nsix\n"
    with pytest.raises(PluginRejected) as caught:
        check_requirements(content)
    assert caught.value.message == (
        f"requirements.txt: the file is {len(content)} bytes, over the 64 KiB limit. "
        "List only the packages the plugin imports."
    )
    assert caught.value.file == "requirements.txt" and caught.value.line is None


def test_500_lines_are_accepted() -> None:
    assert check_requirements(b"six\n" * 500).count("six") == 500


@pytest.mark.parametrize(
    "text",
    [
        "git+https://github.com/o/r.git@v1#egg=r",
        "r @ git+https://github.com/o/r.git@v1",
        "pkg @ https://files.example/pkg-1.0-py3-none-any.whl",
    ],
)
def test_operator_can_allow_https_and_git_https(text: str) -> None:
    assert check_requirements(text.encode(), allow_urls=True) == text


@pytest.mark.parametrize(
    ("text", "why"),
    [
        (
            "r @ git+ssh://git@github.com/o/r.git",
            "the version control requirement 'git+ssh://git@github.com/o/r.git' is not allowed: "
            "only https:// and git+https:// URLs are accepted",
        ),
        (
            "pkg @ http://plain.example/pkg.whl",
            "the URL requirement 'http://plain.example/pkg.whl' is not allowed: only https:// and "
            "git+https:// URLs are accepted",
        ),
        (
            "-e git+https://github.com/o/r.git#egg=r",
            "the option '-e' is not allowed: editable installs are not allowed",
        ),
    ],
)
def test_allowing_urls_still_refuses_other_schemes_and_options(text: str, why: str) -> None:
    with pytest.raises(PluginRejected) as caught:
        check_requirements(text.encode(), allow_urls=True)
    assert caught.value.message == f"requirements.txt, line 1: {why}."


def _zip(requirements: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("main.py", MAIN)
        archive.writestr("requirements.txt", requirements)
    return buffer.getvalue()


def test_read_upload_applies_the_policy() -> None:
    with pytest.raises(PluginRejected) as caught:
        read_upload("p.zip", _zip(b"six\n--index-url https://evil.example/simple\n"))
    assert caught.value.to_dict() == {
        "code": "plugin_rejected",
        "message": "requirements.txt, line 2: the option '--index-url' is not allowed: the "
        "package index is chosen by the operator.",
        "file": "requirements.txt",
        "line": 2,
    }
    url = b"r @ git+https://github.com/o/r.git\n"
    with pytest.raises(PluginRejected):
        read_upload("p.zip", _zip(url))
    allowed = read_upload("p.zip", _zip(url), UploadLimits(allow_url_requirements=True))
    assert allowed.requirements == url.decode()
