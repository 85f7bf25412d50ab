"""The requirements.txt policy: what a plugin may ask pip to install, checked at upload.

``pip install -r`` of a stranger's file runs arbitrary code and can be pointed anywhere, so
only plain PEP 508 requirements go through: names with extras, version specifiers,
environment markers and ``--hash``. Refused, each with the line and the reason: option lines
(``-i``, ``-r``, ``-e``, ``--trusted-host``, ...), URLs and ``name @ url``, VCS lines, local
paths, ``${VAR}`` expansion, NUL or non-UTF-8 bytes, and files over ``MAX_LINES`` lines or
``MAX_BYTES`` bytes. An operator may allow https URL and ``git+https`` lines for trusted
tenants (``Settings.build_allow_url_requirements``).
"""

from __future__ import annotations

import re

from packaging.requirements import InvalidRequirement, Requirement

from executor.errors import PluginRejected

__all__ = ["MAX_BYTES", "MAX_LINES", "REQUIREMENTS_FILE", "check_requirements"]

REQUIREMENTS_FILE = "requirements.txt"
MAX_LINES = 500
MAX_BYTES = 64 * 1024

# pip's own comment rule: '#' at the start of a line or after whitespace.
_COMMENT = re.compile(r"(^|\s+)#.*$")
_ENV_VAR = re.compile(r"\$\{[^}]*\}")
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_VCS_PREFIXES = ("git+", "hg+", "svn+", "bzr+")
_ALLOWED_URL_PREFIXES = ("https://", "git+https://")
_ARCHIVE_SUFFIXES = (".whl", ".tar.gz", ".tgz", ".zip", ".tar.bz2", ".tar")
_HASH = re.compile(r"^--hash[= ]\s*[a-z0-9]+:[0-9a-fA-F]+$")
# Why each option is refused; any other option gets the generic reason.
_OPTION_REASONS: dict[str, str] = {
    "-i": "the package index is chosen by the operator",
    "--index-url": "the package index is chosen by the operator",
    "--extra-index-url": "the package index is chosen by the operator",
    "--no-index": "the package index is chosen by the operator",
    "-f": "packages come from the operator's index only",
    "--find-links": "packages come from the operator's index only",
    "--trusted-host": "TLS checks cannot be turned off",
    "-r": "nested requirement files are not read",
    "--requirement": "nested requirement files are not read",
    "-c": "constraint files are not read",
    "--constraint": "constraint files are not read",
    "-e": "editable installs are not allowed",
    "--editable": "editable installs are not allowed",
    "--pre": "pre-releases are only installed when a specifier names one (e.g. 'pkg==2.0b1')",
}


def check_requirements(content: bytes, *, allow_urls: bool = False) -> str:
    """The text of an acceptable requirements.txt, or ``PluginRejected`` naming the line.

    ``allow_urls`` lets ``https://`` and ``git+https://`` lines (and ``name @ <such url>``)
    through, for tenants the operator trusts.
    """
    if len(content) > MAX_BYTES:
        raise _rejected(
            None,
            f"the file is {len(content)} bytes, over the {MAX_BYTES // 1024} KiB limit. "
            "List only the packages the plugin imports",
        )
    if b"\x00" in content:
        raise _rejected(
            content.count(b"\n", 0, content.index(b"\x00")) + 1,
            "the line has a NUL byte. Save the file as plain UTF-8 text",
        )
    text = _decode(content)
    lines = text.splitlines()
    if len(lines) > MAX_LINES:
        raise _rejected(
            MAX_LINES + 1,
            f"the file has {len(lines)} lines, over the limit of {MAX_LINES}. "
            "List only the packages the plugin imports",
        )
    for number, logical in _logical_lines(lines):
        _check_line(number, logical, allow_urls)
    return text


def _decode(content: bytes) -> str:
    try:
        return content.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        raise _rejected(
            content.count(b"\n", 0, exc.start) + 1,
            "the file is not UTF-8 text. Save it as UTF-8 and upload again",
        ) from exc


def _logical_lines(lines: list[str]) -> list[tuple[int, str]]:
    """(first physical line number, text) with comments dropped and '\\' continuations joined,
    as pip reads the file."""
    joined: list[tuple[int, str]] = []
    pending: tuple[int, str] | None = None
    for number, raw in enumerate(lines, start=1):
        line = _COMMENT.sub("", raw)
        start, text = pending if pending is not None else (number, "")
        if line.endswith("\\"):
            pending = (start, text + line[:-1])
            continue
        pending = None
        joined.append((start, text + line))
    if pending is not None:
        joined.append(pending)
    return [(number, text.strip()) for number, text in joined if text.strip()]


def _check_line(number: int, line: str, allow_urls: bool) -> None:
    variable = _ENV_VAR.search(line)
    if variable is not None:
        raise _rejected(
            number,
            f"'{variable.group(0)}' asks pip to expand an environment variable, which builds "
            "never do. Write the value itself",
        )
    if line.startswith("-"):
        option = re.split(r"[=\s]", line, maxsplit=1)[0]
        reason = _OPTION_REASONS.get(option, "pip options cannot be set from requirements.txt")
        raise _rejected(number, f"the option '{option}' is not allowed: {reason}")
    requirement, options = _split_options(line)
    for option in options:
        if not _HASH.match(option):
            name = re.split(r"[=\s]", option, maxsplit=1)[0]
            raise _rejected(
                number,
                f"the option '{name}' is not allowed: only '--hash=<algorithm>:<digest>' may "
                "follow a requirement",
            )
    _check_requirement(number, requirement, allow_urls)


def _split_options(line: str) -> tuple[str, list[str]]:
    """``'pkg==1 --hash=sha256:ab --hash sha256:cd'`` -> ``('pkg==1', ['--hash=...', ...])``."""
    parts = re.split(r"\s+(?=--?[A-Za-z])", line)
    return parts[0].strip(), [part.strip() for part in parts[1:]]


def _check_requirement(number: int, text: str, allow_urls: bool) -> None:
    target = _url_of(text)
    if target is not None:
        _check_url(number, target, allow_urls)
        return
    if _looks_like_path(text):
        raise _rejected(
            number,
            f"'{text}' is a local path: plugins install packages from the index only. "
            "Write the package name and version instead (e.g. 'requests==2.32.3')",
        )
    try:
        Requirement(text)
    except InvalidRequirement as exc:
        raise _rejected(
            number,
            f"'{text}' is not a valid PEP 508 requirement. Write a package name with "
            "optional extras, version and marker, e.g. 'requests[socks]>=2.31,<3'",
        ) from exc


def _url_of(text: str) -> str | None:
    """The URL of a URL or VCS line, or of ``name @ url``; None for anything else."""
    for candidate in (text, text.split("@", 1)[1].strip() if "@" in text else ""):
        if _URL.match(candidate) or candidate.startswith(_VCS_PREFIXES):
            return candidate
    return None


def _check_url(number: int, url: str, allow_urls: bool) -> None:
    if allow_urls and url.startswith(_ALLOWED_URL_PREFIXES):
        return
    kind = "version control" if url.startswith(_VCS_PREFIXES) else "URL"
    if allow_urls:
        raise _rejected(
            number,
            f"the {kind} requirement '{url}' is not allowed: only https:// and git+https:// "
            "URLs are accepted",
        )
    raise _rejected(
        number,
        f"the {kind} requirement '{url}' is not allowed: packages come from the operator's "
        "index only. Publish the package there, or ask the operator to allow URL requirements",
    )


def _looks_like_path(text: str) -> bool:
    return (
        text.startswith((".", "/", "~"))
        or "/" in text
        or "\\" in text
        or text.lower().endswith(_ARCHIVE_SUFFIXES)
    )


def _rejected(line: int | None, why: str) -> PluginRejected:
    where = f"{REQUIREMENTS_FILE}, line {line}" if line is not None else REQUIREMENTS_FILE
    return PluginRejected(f"{where}: {why}.", file=REQUIREMENTS_FILE, line=line)
