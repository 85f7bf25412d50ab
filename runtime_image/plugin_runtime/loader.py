"""Imports the plugin's ``main.py`` as ``plugin_code.main`` and finds ``PluginHandler``.

Paths are strings (``os.path``), not ``pathlib``: each module the runtime imports is a cold
start's wait, several milliseconds under gVisor.
"""

from __future__ import annotations

import importlib
import os
import sys
import traceback

PACKAGE = "plugin_code"
DEFAULT_ROOT = "/opt/plugin"


class PluginLoadError(Exception):
    """The plugin cannot be loaded; the message (maybe a traceback) says why."""


def plugin_root() -> str:
    """``$PLUGIN_ROOT`` (default ``/opt/plugin``): the folder that contains ``plugin_code/``."""
    return os.environ.get("PLUGIN_ROOT", DEFAULT_ROOT)


def _prepare_sys_path(root: str) -> None:
    # `python -m` puts the working directory first on sys.path; it is /tmp (writable) in
    # the container and must not shadow anything, so it goes.
    cwd = os.getcwd()
    if sys.path and sys.path[0] in ("", cwd):
        del sys.path[0]
    sys.path.insert(0, root)
    # The plugin's own modules also import by their plain name (`from mixins import Mixin`),
    # from the end of sys.path so they never shadow the standard library, the runtime or an
    # installed package; the upload check (executor/intake/inheritance.py) resolves names the same.
    sys.path.append(os.path.join(root, PACKAGE))


def load_handler_class(root: str) -> type:
    """Import ``<root>/plugin_code/main.py`` as a package module; return ``PluginHandler``.

    Relative imports (``from .helpers import f``), absolute ones of the plugin's own modules
    (``from helpers import f``) and sub-packages work, with or without
    ``plugin_code/__init__.py``. Raises :class:`PluginLoadError` when ``main.py`` is
    missing, raises while importing (the message is the traceback) or defines no class
    ``PluginHandler``.
    """
    main = os.path.join(root, PACKAGE, "main.py")
    if not os.path.isfile(main):
        raise PluginLoadError(f"no plugin code: {main} does not exist")
    _prepare_sys_path(root)
    try:
        module = importlib.import_module(f"{PACKAGE}.main")
    except (Exception, SystemExit) as exc:
        tb = exc.__traceback__.tb_next if exc.__traceback__ is not None else None
        text = "".join(traceback.format_exception(type(exc), exc, tb)).rstrip("\n")
        raise PluginLoadError(f"could not import {PACKAGE}.main ({main}):\n{text}") from None
    handler = getattr(module, "PluginHandler", None)
    if not isinstance(handler, type):
        raise PluginLoadError(f"{main} defines no class PluginHandler")
    return handler
