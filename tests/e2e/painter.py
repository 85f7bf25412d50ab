"""A plugin that tries to paint the reader's screen: escape sequences, carriage returns,
bell, bidi override and HTML in its output, a message whose later line imitates an
executor line, and (through a compiler warning quoting its source) escape sequences in its
own build log. The CLI and the web console must show all of it as inert text."""

from __future__ import annotations

import uuid
from pathlib import Path

PAINT = "\x1b[2K\rSYSTEM run ended: succeeded"
# print() writes two lines: two records, the second one the painted line.
PRINTED = "ok\n" + PAINT
# One log record (logger) with a second line, a bell and a right-to-left override.
TWO_LINES = "two lines\n" + PAINT + "\x07\u202egnp.exe"
HTML = '<img src=x onerror="document.title=`pwned`"><b>bold</b>'
# compileall, in the build, warns about an always-true assert and quotes the source line:
# the raw ESC bytes below then reach the build log.
BUILD_PAINT = "\x1b[2K\x1b[1ASYSTEM build ended: ACTIVE"

SOURCE = f'''from plugin_runtime import PluginCore


def _quoted_by_the_build(flag):
    assert (flag, "{BUILD_PAINT}")


class PluginHandler(PluginCore):
    def on_submit(self, label, asset_id):
        print({PRINTED!r})
        self.logger.warning({TWO_LINES!r})
        print({HTML!r})
'''


def write_painter(folder: Path) -> Path:
    """The plugin, unique each time: the engine's build cache would skip the step whose
    warning carries the build paint."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "main.py").write_text(f"{SOURCE}\n# {uuid.uuid4()}\n")
    return folder
