"""Identifiers: what each kind may be, checked in one place by REST, GraphQL and the CLI.

An identifier is matched whole (``fullmatch``): ``re.match`` with ``$`` let ``'qa_bot\\n'``
through, since ``$`` also matches before a final newline. Each kind's rule is here only, so
changing one changes it everywhere.

Plugin (and webhook) names are free text, as Kili's are (its guide uploads
``"My first kili plugin"``): printable, bounded, stored in Unicode NFC, and unique per tenant
by ``plugin_name_key`` (compatibility-normalised and case-folded), so ``qa_bot`` and
``QA_bot`` cannot both exist. A word mixing scripts (a Greek omicron among Latin letters)
is refused as a lookalike. Every other kind stays a strict pattern.
"""

from __future__ import annotations

import enum
import hashlib
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator, Field, WithJsonSchema
from pydantic_core import PydanticCustomError

from executor.bounds import MAX_INT64

__all__ = [
    "EventId",
    "IdKind",
    "IdentifierError",
    "InvocationId",
    "KeyId",
    "NodeId",
    "PluginName",
    "ProjectId",
    "RuntimeName",
    "TenantName",
    "VersionNumber",
    "WebhookName",
    "check_identifier",
    "identifier_problem",
    "plugin_name_key",
]

# What a refusal shows of a long value: enough to recognise it, never the whole of it.
SHOWN_CHARS = 60


@dataclass(frozen=True)
class _Rule:
    pattern: str
    allowed: str

    def normal(self, value: str) -> str:
        """The form a valid ``value`` is stored and looked up in."""
        return value

    def flaw(self, value: str) -> str | None:
        """What is wrong with ``value`` (None: nothing), told before ``allowed``."""
        return None if re.fullmatch(self.pattern, value) else ""  # re caches compiled patterns


# Plugin names: the columns holding them (plugins.name, runs' and logs' plugin_name) are
# VARCHAR(64), which PostgreSQL counts in characters.
PLUGIN_NAME_MAX_CHARS = 64
# Before normalising, a bound on the raw text: NFC composes at most a few code points into one.
_RAW_MAX_CHARS = 4 * PLUGIN_NAME_MAX_CHARS
# What a character that is not printable is, by Unicode general category.
_UNPRINTABLE = {
    "Cc": "a control character",
    "Cf": "an invisible format character",
    "Cs": "a lone surrogate",
    "Co": "a private-use character",
    "Cn": "an unassigned code point",
    "Zl": "a line separator",
    "Zp": "a paragraph separator",
    "Zs": "a space other than ' '",
}
# Scripts a word may mix (Unicode TR39's "highly restrictive" level); any other word has
# letters of one script, else it may pass for another name ('qa_b\\u03bft': a Greek
# omicron between Latin letters).
_MIXES = (
    frozenset({"Latin", "Han", "Hiragana", "Katakana"}),
    frozenset({"Latin", "Han", "Bopomofo"}),
    frozenset({"Latin", "Han", "Hangul"}),
)
# Character names' first words that are not their script's name.
_SCRIPT_WORDS = {"CJK": "Han", "IDEOGRAPHIC": "Han", "KATAKANA-HIRAGANA": None, "MODIFIER": None}


def _script(char: str) -> str | None:
    """The script of a letter, from its Unicode name (``GREEK SMALL LETTER OMICRON``:
    Greek); None for what every script shares (digits, punctuation, marks, symbols)."""
    if not unicodedata.category(char).startswith("L"):
        return None
    first = unicodedata.name(char, "").split(" ", 1)[0]
    script = _SCRIPT_WORDS.get(first, first.title())
    return script or None


def _mixed_scripts(word: str) -> str | None:
    """How ``word`` mixes scripts, or None when it does not."""
    seen: dict[str, str] = {}
    for char in unicodedata.normalize("NFKC", word):  # fullwidth or bold 'a' is Latin
        script = _script(char)
        if script is not None:
            seen.setdefault(script, char)
    scripts = set(seen)
    if len(scripts) <= 1 or any(scripts <= mix for mix in _MIXES):
        return None
    others = ", ".join(
        f"{c!r} is U+{ord(c):04X} {unicodedata.name(c)}" for c in [*seen.values()][1:]
    )
    return (
        f"the word {word!r} mixes {' and '.join(seen)} letters ({others}), so it may pass for "
        "another name: write each word in one script"
    )


@dataclass(frozen=True)
class _TextRule(_Rule):
    """Free text: printable, bounded, NFC, no lookalike words."""

    def normal(self, value: str) -> str:
        return unicodedata.normalize("NFC", value)

    def flaw(self, value: str) -> str | None:
        if not value:
            return "it is empty"
        if len(value) > _RAW_MAX_CHARS or len(self.normal(value)) > PLUGIN_NAME_MAX_CHARS:
            return f"it has more than {PLUGIN_NAME_MAX_CHARS} characters"
        for index, char in enumerate(value, start=1):
            if not char.isprintable():
                what = _UNPRINTABLE.get(unicodedata.category(char), "not printable")
                return f"character {index} is U+{ord(char):04X}, {what}"
        return self._layout_flaw(value) or _first(map(_mixed_scripts, value.split(" ")))

    @staticmethod
    def _layout_flaw(value: str) -> str | None:
        if "/" in value:  # a path segment cannot hold it, even as %2F
            return "it contains '/'"
        if value != value.strip(" ") or "  " in value:
            return "it has a space at either end or two spaces in a row"
        if value in (".", ".."):  # URLs drop such a path segment
            return "it is '.' or '..'"
        return None


def _first(flaws: Iterable[str | None]) -> str | None:
    return next((flaw for flaw in flaws if flaw), None)


_PLUGIN = _TextRule(
    # What the OpenAPI schema can say of it; the rule is ``flaw``.
    f"[^/]{{1,{PLUGIN_NAME_MAX_CHARS}}}",
    f"use 1 to {PLUGIN_NAME_MAX_CHARS} printable characters (letters, digits, punctuation, "
    "single spaces between words), no '/', and no word mixing scripts",
)
# The ids the store makes (``executor.store.tables.new_id``).
_UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
_ID = _Rule(
    r"[A-Za-z0-9][A-Za-z0-9_.:@-]{0,199}",
    "use 1 to 200 letters, digits, '_', '.', ':', '@' or '-', starting with a letter or digit",
)


class IdKind(enum.Enum):
    """A kind of identifier; its value names it in messages."""

    PLUGIN = "plugin name"
    WEBHOOK = "webhook name"
    PROJECT = "project id"
    EVENT = "event id"
    TENANT = "tenant name"
    KEY = "key id"
    INVOCATION = "invocation id"
    NODE = "node id"
    RUNTIME = "runtime"
    VERSION = "version number"

    @property
    def rule(self) -> _Rule:
        return _RULES[self]


_RULES: dict[IdKind, _Rule] = {
    IdKind.PLUGIN: _PLUGIN,
    # A webhook is a plugin of another kind: same names.
    IdKind.WEBHOOK: _PLUGIN,
    IdKind.PROJECT: _ID,
    IdKind.EVENT: _ID,
    IdKind.TENANT: _Rule(
        r"[a-z0-9][a-z0-9_-]{0,63}",
        "use 1 to 64 lower-case letters, digits, '_' or '-', starting with a letter or digit",
    ),
    IdKind.KEY: _Rule(_UUID, "use the id of the key as its key list shows it (a lower-case UUID)"),
    # Runs' ids are UUIDs; the general rule is enough to bound what a lookup is given.
    IdKind.INVOCATION: _ID,
    IdKind.NODE: _Rule(
        r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,199}",
        "use 1 to 200 letters, digits, '_', '.', ':' or '-', starting with a letter or digit",
    ),
    # Digits only: int() would take ' 1', '1\n' or '1_0'.
    IdKind.VERSION: _Rule(r"[1-9][0-9]{0,18}", "use the version's number: 1, 2, 3, ..."),
    IdKind.RUNTIME: _Rule(
        r"[A-Za-z0-9][A-Za-z0-9_.-]{0,39}",
        "use 1 to 40 letters, digits, '_', '.' or '-', starting with a letter or digit",
    ),
}


class IdentifierError(ValueError):
    """An identifier its kind does not allow; the message says why and what is."""

    def __init__(self, kind: IdKind, value: str, flaw: str = "") -> None:
        self.kind = kind
        why = f"{flaw}; " if flaw else ""
        self.message = f"{kind.value} {_shown(value)} is not allowed: {why}{kind.rule.allowed}"
        super().__init__(self.message)


def _shown(value: str) -> str:
    if len(value) <= SHOWN_CHARS:
        return repr(value)
    return f"{value[:SHOWN_CHARS]!r}... ({len(value)} characters)"


def identifier_problem(kind: IdKind, value: str) -> str | None:
    """Why ``value`` is not a ``kind``, or None if it is one."""
    flaw = kind.rule.flaw(value)
    if flaw is None:
        return None
    return IdentifierError(kind, value, flaw).message


def check_identifier(kind: IdKind, value: str) -> str:
    """``value`` in its stored form (plugin names: NFC) if it is a whole ``kind``, else
    IdentifierError saying what is wrong and what is allowed."""
    flaw = kind.rule.flaw(value)
    if flaw is not None:
        raise IdentifierError(kind, value, flaw)
    return kind.rule.normal(value)


def plugin_name_key(name: str) -> str:
    """What makes two plugin names one: a digest of the name compatibility-normalised and
    case-folded (Unicode's NFKC_Casefold, as identifiers compare), so ``QA_bot``,
    ``qa_bot`` and 'qa_bot' in fullwidth letters (U+FF51 U+FF41 ...) share it. A digest, as
    folding may lengthen a name many times (one Arabic ligature folds to 18 characters)."""
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", name).casefold())
    return hashlib.sha256(folded.encode("utf-8", "surrogatepass")).hexdigest()


def _pydantic_check(kind: IdKind) -> AfterValidator:
    def check(value: str) -> str:
        try:
            return check_identifier(kind, value)
        except IdentifierError as error:
            # Its own error type: the API answers it with the code ``invalid_identifier``.
            raise PydanticCustomError("invalid_identifier", error.message) from None

    return AfterValidator(check)


def _schema(kind: IdKind) -> WithJsonSchema:
    """The rule in the OpenAPI schema, anchored (JSON Schema patterns are searches)."""
    return WithJsonSchema({"type": "string", "pattern": f"^{kind.rule.pattern}$"})


# ``str`` checked as one kind, for pydantic models and FastAPI parameters.
PluginName = Annotated[str, _pydantic_check(IdKind.PLUGIN), _schema(IdKind.PLUGIN)]
WebhookName = Annotated[str, _pydantic_check(IdKind.WEBHOOK), _schema(IdKind.WEBHOOK)]
ProjectId = Annotated[str, _pydantic_check(IdKind.PROJECT), _schema(IdKind.PROJECT)]
EventId = Annotated[str, _pydantic_check(IdKind.EVENT), _schema(IdKind.EVENT)]
TenantName = Annotated[str, _pydantic_check(IdKind.TENANT), _schema(IdKind.TENANT)]
InvocationId = Annotated[str, _pydantic_check(IdKind.INVOCATION), _schema(IdKind.INVOCATION)]
KeyId = Annotated[str, _pydantic_check(IdKind.KEY), _schema(IdKind.KEY)]
NodeId = Annotated[str, _pydantic_check(IdKind.NODE), _schema(IdKind.NODE)]
RuntimeName = Annotated[str, _pydantic_check(IdKind.RUNTIME), _schema(IdKind.RUNTIME)]


def _version_text(value: object) -> object:
    """A version number sent as text (a path, a query) must be its digits and nothing else."""
    if isinstance(value, str):
        problem = identifier_problem(IdKind.VERSION, value)
        if problem is not None:
            raise PydanticCustomError("invalid_identifier", problem)
    return value


# A version number: from a path or a query (text) or a JSON number, 1 to MAX_INT64.
VersionNumber = Annotated[int, BeforeValidator(_version_text), Field(ge=1, le=MAX_INT64)]
