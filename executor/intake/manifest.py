"""``plugin.toml``, the optional manifest at the root of an upload, and the runtime choice.

It holds one setting, ``runtime = "NAME"``: the flavor the plugin's image builds FROM. The
multipart field ``runtime`` (CLI ``--runtime``) overrides it; neither given, the operator's
default (``EXECUTOR_RUNTIME_DEFAULT_FLAVOR``) applies.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping

from executor.errors import PluginRejected, UnknownRuntime
from executor.intake.pysource import decode_text
from executor.statuses import RuntimeFlavor

__all__ = ["MANIFEST_FILE", "choose_flavor", "manifest_runtime"]

MANIFEST_FILE = "plugin.toml"
KNOWN_KEYS = frozenset({"runtime"})
_TOML_LINE = re.compile(r"at line (\d+)")
_RUNTIME_LINE = re.compile(r"^[ \t]*runtime[ \t]*=", re.MULTILINE)


def manifest_runtime(files: Mapping[str, bytes]) -> str | None:
    """The flavor ``plugin.toml`` names, checked (None: no file, or no ``runtime`` in it)."""
    content = files.get(MANIFEST_FILE)
    if content is None:
        return None
    text = decode_text(MANIFEST_FILE, content)
    try:
        manifest = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        found = _TOML_LINE.search(str(exc))
        raise PluginRejected(
            f"{MANIFEST_FILE} is not valid TOML ({exc}): write 'runtime = \"kili\"' and upload "
            "again.",
            file=MANIFEST_FILE,
            line=int(found.group(1)) if found else None,
        ) from exc
    unknown = sorted(manifest.keys() - KNOWN_KEYS)
    if unknown:
        raise PluginRejected(
            f"{MANIFEST_FILE}: unknown key {unknown[0]!r}; the only key is 'runtime'.",
            file=MANIFEST_FILE,
        )
    if "runtime" not in manifest:
        return None
    line = text.count("\n", 0, found.start()) + 1 if (found := _RUNTIME_LINE.search(text)) else None
    return check_flavor(manifest["runtime"], field="plugin.toml: runtime", line=line)


def choose_flavor(
    requested: str | None, from_manifest: str | None, default: RuntimeFlavor
) -> RuntimeFlavor:
    """The flavor of an upload: the form field, else ``plugin.toml``, else the default."""
    if requested is not None:
        return RuntimeFlavor(check_flavor(requested, field="runtime"))
    return RuntimeFlavor(from_manifest) if from_manifest is not None else default


def check_flavor(value: object, *, field: str, line: int | None = None) -> str:
    """``value`` if it names a flavor, else ``UnknownRuntime`` listing the allowed ones."""
    allowed = [flavor.value for flavor in RuntimeFlavor]
    if isinstance(value, str) and value in allowed:
        return value
    raise UnknownRuntime(
        f"{field}: unknown runtime {value!r}; choose one of {', '.join(allowed)} "
        "(GET /v1/runtimes lists their packages).",
        field=field,
        allowed=allowed,
        file=MANIFEST_FILE if field.startswith(MANIFEST_FILE) else None,
        line=line,
    )
