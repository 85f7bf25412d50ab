"""Which methods a plugin class has, its base classes included, read from the AST only.

A base class counts when it is defined in the plugin's own modules: in the same module, or
reached through ``from .mixins import Mixin``, ``from mixins import Mixin`` (the runtime
puts the plugin folder on ``sys.path``, after the standard library and installed
packages), ``from plugin_code.mixins import Mixin``, ``import mixins`` then
``mixins.Mixin``, ``from . import mixins``, ``from .mixins import *``, an alias
(``Base = Mixin``), at any depth. A base from anywhere else (``PluginCore``, a third-party
package, a standard-library module, a name that cannot be followed statically) contributes
nothing. Top-level statements are read, including those under ``if`` and ``try`` (where the
``try`` path wins over the ``except`` fallback); as at run time, the last binding of a name
wins.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

__all__ = ["ClassMethods", "ClassRef", "PluginModules"]

ModuleKey = tuple[str, ...]
# The package the runtime imports the plugin as: absolute imports may name it.
PACKAGE = "plugin_code"
# Deeper than any real hierarchy; stops pathological alias or import chains.
MAX_DEPTH = 64


@dataclass(frozen=True)
class ClassRef:
    """A class statement of the plugin, with the module it is in."""

    module: ModuleKey
    node: ast.ClassDef


@dataclass(frozen=True)
class ClassMethods:
    """A class's function names, its plugin bases' included, and the bases not followed."""

    names: frozenset[str]
    foreign_bases: tuple[str, ...]  # as written, e.g. ("PluginCore", "thirdparty.Mixin")


@dataclass(frozen=True)
class _ModuleRef:
    key: ModuleKey


@dataclass(frozen=True)
class _Import:
    """``from <module> import <name>``: resolved when looked up (``module`` None: not ours)."""

    module: ModuleKey | None
    name: str


@dataclass(frozen=True)
class _Alias:
    """``Name = <expression>`` in ``module``."""

    module: ModuleKey
    value: ast.expr


_Binding = ClassRef | _ModuleRef | _Import | _Alias | None
_Resolved = ClassRef | _ModuleRef | None


@dataclass
class _Scope:
    bindings: dict[str, _Binding] = field(default_factory=dict)
    star_imports: list[ModuleKey] = field(default_factory=list)


class PluginModules:
    """The plugin's modules by dotted name, from ``{path: tree}`` of its ``.py`` files."""

    def __init__(self, trees: Mapping[str, ast.Module]) -> None:
        keys = {path: _module_key(path) for path in trees}
        self._scopes: dict[ModuleKey, _Scope] = {key: _Scope() for key, _ in keys.values()}
        # Folders with or without __init__.py: namespace packages import too.
        self._packages = {key[:n] for key, _ in keys.values() for n in range(len(key))}
        self._packages |= {key for key, is_package in keys.values() if is_package}
        for path, (key, is_package) in keys.items():
            self._bind_all(key, is_package, trees[path].body, self._scopes[key])

    def methods(self, cls: ClassRef) -> ClassMethods:
        """The functions defined in ``cls`` and in its bases from the plugin."""
        names: set[str] = set()
        foreign: list[str] = []
        for ref in self._class_and_bases(cls, set(), foreign, 0):
            names |= {
                node.name
                for node in ref.node.body
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
            }
        return ClassMethods(frozenset(names), tuple(dict.fromkeys(foreign)))

    def _class_and_bases(
        self, cls: ClassRef, seen: set[ClassRef], foreign: list[str], depth: int
    ) -> Iterator[ClassRef]:
        if cls in seen or depth > MAX_DEPTH:
            return
        seen.add(cls)
        yield cls
        for base in cls.node.bases:
            resolved = self._resolve_expr(cls.module, base, depth + 1)
            if isinstance(resolved, ClassRef):
                yield from self._class_and_bases(resolved, seen, foreign, depth + 1)
            else:
                foreign.append(ast.unparse(base))

    # --- binding names, module by module

    def _bind_all(
        self, key: ModuleKey, is_package: bool, body: list[ast.stmt], scope: _Scope
    ) -> None:
        for node in body:
            if isinstance(node, ast.If):
                self._bind_all(key, is_package, node.body + node.orelse, scope)
            elif isinstance(node, ast.Try | ast.TryStar):
                # The except blocks are the fallback: what the try path binds wins.
                handlers = [stmt for handler in node.handlers for stmt in handler.body]
                block = handlers + node.body + node.orelse + node.finalbody
                self._bind_all(key, is_package, block, scope)
            else:
                self._bind(key, is_package, node, scope)

    def _bind(self, key: ModuleKey, is_package: bool, node: ast.stmt, scope: _Scope) -> None:
        if isinstance(node, ast.ClassDef):
            scope.bindings[node.name] = ClassRef(key, node)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            scope.bindings[node.name] = None
        elif isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
            if isinstance(target, ast.Name):
                scope.bindings[target.id] = _Alias(key, node.value)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                self._bind_import(scope, alias)
        elif isinstance(node, ast.ImportFrom):
            self._bind_from(scope, self._import_source(key, is_package, node), node.names)

    @staticmethod
    def _bind_from(scope: _Scope, source: ModuleKey | None, names: list[ast.alias]) -> None:
        for alias in names:
            if alias.name != "*":
                scope.bindings[alias.asname or alias.name] = _Import(source, alias.name)
            elif source is not None:
                scope.star_imports.append(source)

    def _bind_import(self, scope: _Scope, alias: ast.alias) -> None:
        target = self._absolute(alias.name)
        if alias.asname:
            scope.bindings[alias.asname] = _ModuleRef(target) if target is not None else None
        else:  # 'import a.b' binds 'a'
            top = self._absolute(alias.name.split(".")[0])
            bound = alias.name.split(".")[0]
            scope.bindings[bound] = _ModuleRef(top) if top is not None else None

    def _import_source(
        self, key: ModuleKey, is_package: bool, node: ast.ImportFrom
    ) -> ModuleKey | None:
        if node.level == 0:
            return self._absolute(node.module or "")
        package = key if is_package else key[:-1]
        if node.level - 1 > len(package):
            return None  # above the plugin's folder
        base = package[: len(package) - (node.level - 1)]
        return (*base, *node.module.split(".")) if node.module else base

    def _absolute(self, dotted: str) -> ModuleKey | None:
        """The plugin module an absolute import names, or None (standard library, installed
        packages and the runtime come first on the runtime's ``sys.path``)."""
        parts = tuple(dotted.split("."))
        if parts[0] == PACKAGE:
            return parts[1:]
        if parts[0] in sys.stdlib_module_names or not self._exists(parts):
            return None
        return parts

    def _exists(self, key: ModuleKey) -> bool:
        return key in self._scopes or key in self._packages

    # --- resolving names

    def _resolve_expr(self, module: ModuleKey, expr: ast.expr, depth: int) -> _Resolved:
        if depth > MAX_DEPTH:
            return None
        if isinstance(expr, ast.Subscript):  # Base[T]
            return self._resolve_expr(module, expr.value, depth + 1)
        if isinstance(expr, ast.Name):
            return self._lookup(module, expr.id, depth + 1)
        if isinstance(expr, ast.Attribute):
            owner = self._resolve_expr(module, expr.value, depth + 1)
            if isinstance(owner, _ModuleRef):
                return self._lookup(owner.key, expr.attr, depth + 1)
        return None

    def _lookup(self, module: ModuleKey, name: str, depth: int) -> _Resolved:
        """What ``name`` means at the top level of ``module`` (a submodule for a package)."""
        if depth > MAX_DEPTH:
            return None
        scope = self._scopes.get(module)
        if scope is not None and name in scope.bindings:
            return self._follow(scope.bindings[name], depth + 1)
        for star in reversed(scope.star_imports if scope else []):
            found = self._lookup(star, name, depth + 1)
            if found is not None:
                return found
        submodule = (*module, name)
        return _ModuleRef(submodule) if self._exists(submodule) else None

    def _follow(self, binding: _Binding, depth: int) -> _Resolved:
        if isinstance(binding, _Alias):
            return self._resolve_expr(binding.module, binding.value, depth + 1)
        if isinstance(binding, _Import):
            if binding.module is None:
                return None
            return self._lookup(binding.module, binding.name, depth + 1)
        return binding


def _module_key(path: str) -> tuple[ModuleKey, bool]:
    """``"sub/tool.py"`` → ``(("sub", "tool"), False)``; ``"sub/__init__.py"`` → package."""
    parts = tuple(path.removesuffix(".py").split("/"))
    if parts[-1] == "__init__":
        return parts[:-1], True
    return parts, False
