"""The requirements.txt policy: what a plugin may ask pip to install, checked at upload.

``pip install -r`` of a stranger's file runs arbitrary code and can be pointed anywhere, so
only plain PEP 508 requirements go through: names with extras, version specifiers,
environment markers and ``--hash``. Refused, each with the line and the reason: option lines
(``-i``, ``-r``, ``-e``, ``--trusted-host``, ...), URLs and ``name @ url``, VCS lines, local
paths and archive file names, ``${VAR}`` expansion, NUL or non-UTF-8 bytes, an encoding
declaration other than UTF-8, and files over ``MAX_LINES`` lines or ``MAX_BYTES`` bytes. An
operator may allow https URL and ``git+https`` lines for trusted tenants
(``Settings.build.allow_url_requirements``).

The file is read the way pip reads it (``pip/_internal/req/req_file.py``): lines joined at a
trailing backslash before comments are dropped, options split from the requirement at the
first space-separated token that starts with ``-`` and then with ``shlex``; a requirement is
a path when its name (marker and extras aside) ends with one of pip's archive suffixes
(``pip/_internal/utils/filetypes.py``). ``tests/unit/test_requirements_pip.py`` feeds every
accepted line to pip's own parser.
"""

from __future__ import annotations

import re
import shlex

from packaging.requirements import InvalidRequirement, Requirement

from executor.errors import PluginRejected

__all__ = ["ARCHIVE_SUFFIXES", "MAX_BYTES", "MAX_LINES", "REQUIREMENTS_FILE", "check_requirements"]

REQUIREMENTS_FILE = "requirements.txt"
MAX_LINES = 500
MAX_BYTES = 64 * 1024
# pip's ARCHIVE_EXTENSIONS: a requirement whose name ends so is read as a local file.
ARCHIVE_SUFFIXES = (
    ".zip",
    ".whl",
    ".tar.bz2",
    ".tbz",
    ".tar.gz",
    ".tgz",
    ".tar",
    ".tar.xz",
    ".txz",
    ".tlz",
    ".tar.lz",
    ".tar.lzma",
)

# pip's comment rule: '#' at the start of a line or after whitespace.
_COMMENT = re.compile(r"(^|\s+)#.*$")
# pip reads a PEP 263 declaration on either of the first two lines as the file's encoding.
_CODING = re.compile(r"coding[:=]\s*([-\w.]+)", re.ASCII)
_ENV_VAR = re.compile(r"\$\{[^}]*\}")
# Anything before a ':' that could be a URL scheme ("https:", "file:", "git+ssh:").
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
_VCS_PREFIXES = ("git+", "hg+", "svn+", "bzr+")
_ALLOWED_URL_PREFIXES = ("https://", "git+https://")
_EXTRAS = re.compile(r"\[[^\]]+\]$")
# An option glued to the requirement by whitespace that is not a space (pip splits at ' ').
_GLUED_OPTION = re.compile(r"([^\S ])(--?[A-Za-z][\w-]*)")
_HASH_VALUE = re.compile(r"^(sha256|sha384|sha512):[0-9a-fA-F]+$")
_HASH_FORM = "'--hash=<algorithm>:<digest>'"
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
    _check_declared_encoding(text)
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


def _check_declared_encoding(text: str) -> None:
    """pip decodes the file with the encoding a '#' line among the first two declares; one
    that reads the file differently from UTF-8 would show pip lines (even options) this
    check never saw."""
    for number, line in enumerate(text.split("\n")[:2], start=1):
        found = _CODING.search(line) if line.startswith("#") else None
        if found is None:
            continue
        try:
            same = text.encode().decode(found.group(1)) == text
        except (LookupError, ValueError):  # unknown codec, or the bytes do not decode
            same = False
        if not same:
            raise _rejected(
                number,
                f"the comment declares the encoding '{found.group(1)}': pip would decode the "
                "file with it and read other text than the UTF-8 checked here. Remove the "
                "declaration or declare utf-8",
            )


def _logical_lines(lines: list[str]) -> list[tuple[int, str]]:
    """(first physical line number, text) as pip's ``preprocess`` yields them: lines ending
    in '\\' joined first (not a comment line), then comments dropped, then blank lines."""
    joined: list[tuple[int, str]] = []
    parts: list[str] = []
    first = 0
    for number, line in enumerate(lines, start=1):
        is_comment = _COMMENT.match(line) is not None
        if line.endswith("\\") and not is_comment:
            first = first if parts else number
            parts.append(line.strip("\\"))
            continue
        if is_comment:
            line = " " + line
        if parts:
            joined.append((first, "".join([*parts, line])))
            parts = []
        else:
            joined.append((number, line))
    if parts:
        joined.append((first, "".join(parts)))
    stripped = ((number, _COMMENT.sub("", text).strip()) for number, text in joined)
    return [(number, text) for number, text in stripped if text]


def _check_line(number: int, line: str, allow_urls: bool) -> None:
    variable = _ENV_VAR.search(line)
    if variable is not None:
        raise _rejected(
            number,
            f"'{variable.group(0)}' asks pip to expand an environment variable, which builds "
            "never do. Write the value itself",
        )
    requirement, options = _break_args_options(line)
    if not requirement:
        option = re.split(r"[=\s]", line, maxsplit=1)[0]
        reason = _OPTION_REASONS.get(option, "pip options cannot be set from requirements.txt")
        raise _rejected(number, f"the option '{option}' is not allowed: {reason}")
    glued = _GLUED_OPTION.search(requirement)
    if glued is not None:
        raise _rejected(
            number,
            f"'{glued.group(2)}' follows a {_whitespace_name(glued.group(1))}, not a space: pip "
            "splits options from a requirement at spaces only, so it would read the whole "
            f"line as one invalid requirement. Put a space before '{glued.group(2)}'",
        )
    _check_options(number, options)
    _check_requirement(number, requirement, allow_urls)


def _break_args_options(line: str) -> tuple[str, str]:
    """pip's ``break_args_options``: the requirement is every space-separated token before
    the first one that starts with '-'; the rest is options."""
    tokens = line.split(" ")
    for index, token in enumerate(tokens):
        if token.startswith("-"):
            return " ".join(tokens[:index]), " ".join(tokens[index:])
    return line, ""


def _whitespace_name(char: str) -> str:
    return "tab" if char == "\t" else f"U+{ord(char):04X} whitespace character"


def _check_options(number: int, options: str) -> None:
    """Only ``--hash=<algorithm>:<digest>`` (or ``--hash <value>``) after a requirement, as
    pip's ``shlex`` split gives the tokens."""
    try:
        tokens = shlex.split(options)
    except ValueError as exc:
        raise _rejected(
            number, f"pip cannot split the options '{options}' ({exc}). Fix the quoting"
        ) from exc
    while tokens:
        token = tokens.pop(0)
        if token == "--hash" and tokens:
            value = tokens.pop(0)
        elif token.startswith("--hash="):
            value = token.removeprefix("--hash=")
        elif token.startswith("-"):
            name = re.split(r"[=\s]", token, maxsplit=1)[0]
            raise _rejected(
                number,
                f"the option '{name}' is not allowed: only {_HASH_FORM} may follow a requirement",
            )
        else:
            raise _rejected(
                number,
                f"'{token}' after the options would be ignored by pip: only {_HASH_FORM} may "
                "follow a requirement",
            )
        if not _HASH_VALUE.match(value):
            raise _rejected(
                number,
                f"'--hash={value}' is not a hash pip accepts: write sha256, sha384 or sha512, a "
                "colon and the hex digest",
            )


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
        parsed = Requirement(text)
    except InvalidRequirement as exc:
        raise _rejected(
            number,
            f"'{text}' is not a valid PEP 508 requirement. Write a package name with "
            "optional extras, version and marker, e.g. 'requests[socks]>=2.31,<3'",
        ) from exc
    if parsed.url is not None:  # 'name @ <something that is not a URL>'
        _check_url(number, parsed.url, allow_urls)


def _url_of(text: str) -> str | None:
    """The URL of a URL or VCS line, or of ``name @ url``; None for anything else."""
    for candidate in (text, text.split("@", 1)[1].strip() if "@" in text else ""):
        if _SCHEME.match(candidate) or candidate.startswith(_VCS_PREFIXES):
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
    """As pip decides (``req/constructors.py``): a separator or a leading '.', or a name that,
    marker and extras aside, ends with an archive suffix."""
    name = _EXTRAS.sub("", text.split(";", 1)[0].strip()).strip()
    return (
        text.startswith((".", "/", "~"))
        or "/" in text
        or "\\" in text
        or name.lower().endswith(ARCHIVE_SUFFIXES)
    )


def _rejected(line: int | None, why: str) -> PluginRejected:
    where = f"{REQUIREMENTS_FILE}, line {line}" if line is not None else REQUIREMENTS_FILE
    return PluginRejected(f"{where}: {why}.", file=REQUIREMENTS_FILE, line=line)
