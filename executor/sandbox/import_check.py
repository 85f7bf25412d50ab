"""A build proves the plugin loads: ``main.py`` imported in the built image, sandboxed.

The image's container gets the full sandbox profile of a run (``executor.sandbox.profile``:
read-only root, no network, no capabilities, the executor's pid 1) and no gateway socket,
token or event; it must finish within ``build_import_timeout_s``. A plugin that cannot be
imported fails its build with the traceback in the build log and the file and line of the
failure in the version's error.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from executor.engine import Engine
from executor.errors import BuildFailed
from executor.sandbox.profile import INIT_COMMAND, container_config
from executor.settings import Settings

__all__ = ["PROBE_LABEL", "check_import", "import_failure"]

PROBE_LABEL = "io.plugin-executor.import-check"
PLUGIN_CODE = "/opt/plugin/plugin_code/"
# The probe's module docstring is left out, as pid 1's (profile.INIT_COMMAND).
_PROBE_SOURCE = (Path(__file__).parent / "import_probe.py").read_text().split('"""', 2)[2]
PROBE_COMMAND = ["python3", "-c", _PROBE_SOURCE.strip()]
_FRAME = re.compile(r'^\s*File "([^"]+)", line (\d+)', re.MULTILINE)
_NO_HANDLER = re.compile(r"defines no class PluginHandler")


def check_import(
    engine: Engine, settings: Settings, image: str, on_output: Callable[[str], None]
) -> None:
    """Import the plugin in ``image`` as a run would; ``BuildFailed`` if it cannot be
    (the builder writes the step's line and time around it)."""
    exit_code, output = engine.containers.run_to_end(
        image,
        command=[*INIT_COMMAND, *PROBE_COMMAND],
        user=settings.sandbox.user,
        host_config=container_config(settings.sandbox),
        # Not the managed label: the orphan sweep would remove the container as it runs.
        labels={PROBE_LABEL: "true"},
        timeout_s=settings.build.import_timeout_s,
    )
    text = output.decode("utf-8", "replace")
    on_output(text if text.endswith("\n") or not text else text + "\n")
    if exit_code is None:
        raise BuildFailed(
            f"importing main.py did not finish within {settings.build.import_timeout_s:g} s "
            "(EXECUTOR_BUILD_IMPORT_TIMEOUT_S): move slow work from module level into the "
            "handler"
        )
    if exit_code != 0:
        raise BuildFailed(import_failure(text))


def import_failure(output: str) -> str:
    """The version's error for a failed import check: the plugin file and line where the
    import failed (the last frame in the plugin's code) and the exception's last line."""
    if _NO_HANDLER.search(output):
        return (
            "main.py defines no class PluginHandler once imported (it is deleted or replaced "
            "at module level): keep a class PluginHandler in main.py"
        )
    lines = [line for line in output.splitlines() if line.strip()]
    exception = lines[-1].strip() if lines else f"exit without output ({output!r})"
    frames = [(path, int(line)) for path, line in _FRAME.findall(output)]
    in_plugin = [(p.removeprefix(PLUGIN_CODE), n) for p, n in frames if p.startswith(PLUGIN_CODE)]
    where = f"{in_plugin[-1][0]}, line {in_plugin[-1][1]}" if in_plugin else "main.py"
    hint = ""
    if exception.startswith("ModuleNotFoundError"):
        hint = (
            ": add the package to requirements.txt or choose a runtime flavor that has it "
            "(GET /v1/runtimes)"
        )
    return f"the plugin cannot be imported: {where}: {exception}{hint} (traceback in the build log)"
