"""Handlers inherited from base classes defined in the plugin's own modules (AST only)."""

from __future__ import annotations

import textwrap

import pytest

from executor.errors import PluginRejected
from executor.intake.pysource import find_handlers
from executor.intake.upload import pack_directory, read_upload
from tests.conftest import PLUGINS

SUBMIT_MIXIN = "class Mixin:\n    def on_submit(self, label, asset_id): ...\n"
NONE_OF_THEM = (
    "main.py, line {line}: class PluginHandler defines none of the handlers on_submit, "
    "on_review, on_custom_interface_click, on_send_back_to_queue or on_event, nor do its base "
    "classes from the plugin's own modules (bases from elsewhere are not read: {bases}). Add "
    "at least one of them as a method and upload again."
)


def handlers(main: str, **modules: str) -> tuple[str, ...]:
    """The handlers of a plugin made of ``main`` and ``modules`` ({"sub/x.py": source})."""
    files = {"main.py": textwrap.dedent(main).encode()}
    files |= {path: textwrap.dedent(source).encode() for path, source in modules.items()}
    return find_handlers(files)


def main_with(imports: str, bases: str) -> str:
    """A main.py: ``imports``, then ``class PluginHandler(<bases>PluginCore)`` with no handler."""
    return (
        f"{imports}\nfrom plugin_runtime import PluginCore\n\n\n"
        f"class PluginHandler({bases}PluginCore):\n    pass\n"
    )


def class_line(main: str) -> int:
    lines = textwrap.dedent(main).splitlines()
    return next(n for n, line in enumerate(lines, 1) if line.startswith("class PluginHandler"))


@pytest.mark.parametrize(
    ("main", "modules"),
    [
        (main_with(SUBMIT_MIXIN, "Mixin, "), {}),
        (main_with("from .mixins import Mixin", "Mixin, "), {"mixins.py": SUBMIT_MIXIN}),
        (main_with("from mixins import Mixin", "Mixin, "), {"mixins.py": SUBMIT_MIXIN}),
        (main_with("from plugin_code.mixins import Mixin", "Mixin, "), {"mixins.py": SUBMIT_MIXIN}),
        (main_with("import mixins", "mixins.Mixin, "), {"mixins.py": SUBMIT_MIXIN}),
        (main_with("import mixins as m", "m.Mixin, "), {"mixins.py": SUBMIT_MIXIN}),
        (main_with("from . import mixins", "mixins.Mixin, "), {"mixins.py": SUBMIT_MIXIN}),
        (main_with("from .mixins import *", "Mixin, "), {"mixins.py": SUBMIT_MIXIN}),
        (
            main_with("from .mixins import Mixin as M\nBase = M", "Base, "),
            {"mixins.py": SUBMIT_MIXIN},
        ),
        (main_with("from .mixins import Mixin", "Mixin[int], "), {"mixins.py": SUBMIT_MIXIN}),
        (
            main_with(
                "try:\n    from .mixins import Mixin\nexcept ImportError:\n    Mixin = None",
                "Mixin, ",
            ),
            {"mixins.py": SUBMIT_MIXIN},
        ),
        # Nested: a base of a base, through a sub-package (with or without __init__.py) and a
        # relative import that climbs out of it.
        (
            main_with("from .sub.mix import Mixin", "Mixin, "),
            {
                "sub/mix.py": "from ..core import Core\n\nclass Mixin(Core):\n    pass\n",
                "core.py": "class Core:\n    def on_submit(self, label, asset_id): ...\n",
            },
        ),
        (
            main_with("import sub.mix", "sub.mix.Mixin, "),
            {"sub/__init__.py": "", "sub/mix.py": SUBMIT_MIXIN},
        ),
        (
            main_with("from sub import Mixin", "Mixin, "),
            {"sub/__init__.py": "from .mix import Mixin\n", "sub/mix.py": SUBMIT_MIXIN},
        ),
    ],
    ids=[
        "same-module",
        "relative",
        "plain-name",
        "package-name",
        "import-module",
        "import-module-as",
        "from-dot-import-module",
        "star",
        "alias",
        "generic",
        "try-except",
        "nested-through-subpackage",
        "dotted-module",
        "package-reexport",
    ],
)
def test_a_handler_inherited_from_the_plugins_own_modules_counts(
    main: str, modules: dict[str, str]
) -> None:
    assert handlers(main, **modules) == ("onSubmit",)


def test_own_and_inherited_handlers_are_both_served() -> None:
    main = """
        from .mixins import Mixin

        class PluginHandler(Mixin):
            def on_review(self, label, asset_id): ...
    """
    assert handlers(main, **{"mixins.py": SUBMIT_MIXIN}) == ("onReview", "onSubmit")


def test_the_example_folder_plugin_inherits_through_two_imports() -> None:
    source = read_upload("inherited.tar.gz", pack_directory(PLUGINS / "inherited"))
    assert source.handlers == ("onReview", "onSendBackToQueue", "onSubmit")


@pytest.mark.parametrize(
    ("main", "modules", "bases"),
    [
        # A third-party module, the standard library (even with a local json.py: the
        # runtime's sys.path lists the plugin folder last), a relative import above the
        # plugin's folder, a name rebound after the import, a call.
        (main_with("from thirdparty import Mixin", "Mixin, "), {}, "Mixin, PluginCore"),
        (
            main_with("from json import Mixin", "Mixin, "),
            {"json.py": SUBMIT_MIXIN},
            "Mixin, PluginCore",
        ),
        (
            main_with("from ..mixins import Mixin", "Mixin, "),
            {"mixins.py": SUBMIT_MIXIN},
            "Mixin, PluginCore",
        ),
        (
            main_with("from .mixins import Mixin\n\ndef Mixin(): ...\n", "Mixin, "),
            {"mixins.py": SUBMIT_MIXIN},
            "Mixin, PluginCore",
        ),
        (main_with("import thirdparty", "thirdparty.Mixin, "), {}, "thirdparty.Mixin, PluginCore"),
        (main_with("", "make_base(), "), {}, "make_base(), PluginCore"),
    ],
    ids=["third-party", "stdlib-name", "above-root", "rebound", "third-party-module", "call"],
)
def test_a_base_from_elsewhere_contributes_nothing(
    main: str, modules: dict[str, str], bases: str
) -> None:
    with pytest.raises(PluginRejected) as caught:
        handlers(main, **modules)
    line = class_line(main)
    assert caught.value.message == NONE_OF_THEM.format(line=line, bases=bases)
    assert (caught.value.file, caught.value.line) == ("main.py", line)


def test_cycles_end() -> None:
    main = """
        from .a import A
        B = C
        C = B

        class PluginHandler(A, B):
            pass
    """
    modules = {
        "a.py": "from .b import B\n\nclass A(B):\n    def on_submit(self, label, asset_id): ...\n",
        "b.py": "from .a import A\n\nclass B(A):\n    pass\n",
    }
    assert handlers(main, **modules) == ("onSubmit",)


def test_a_handler_nested_in_a_base_method_does_not_count() -> None:
    main = """
        class Base:
            def helper(self):
                def on_submit(label, asset_id): ...

        class PluginHandler(Base):
            pass
    """
    with pytest.raises(PluginRejected) as caught:
        handlers(main)
    assert caught.value.line == 6
