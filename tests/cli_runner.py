"""``plugin-executor ARGS`` run in the test process, as typer's ``CliRunner`` runs an app.

The client commands (push, list, event, logs, tenants, ...) talk to a server over HTTP; a
subprocess per command spent some 0.45 s of CPU on the interpreter, the imports and line
coverage before the command began, for the 200 commands the suite runs. What only a real
process shows is tested with real processes: the installed entry point and its exit codes
(``integration/test_sandbox_limits.py``), settings from the environment
(``e2e/test_cli_settings.py``), ``logs --follow`` and Ctrl-C (``e2e/test_logs_cli.py``),
``plugin-executor run`` (``e2e/test_scaffold.py``, ``e2e/test_templates_on_platform.py``)
and the servers and workers.
"""

from __future__ import annotations

import subprocess
from collections.abc import Mapping, Sequence

from typer.testing import CliRunner

from executor.cli import app

__all__ = ["run_cli"]


def run_cli(
    args: Sequence[str], env: Mapping[str, str], *, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """The command's exit code, standard output and standard error, as a subprocess's
    would be. ``env`` is set for the command's time only; an exception the CLI does not
    handle fails the test instead of becoming exit code 1."""
    result = CliRunner().invoke(app, list(args), input=stdin, env=env, catch_exceptions=False)
    return subprocess.CompletedProcess(
        ["plugin-executor", *args], result.exit_code, result.stdout, result.stderr
    )
