"""What a GraphQL document costs, computed from the parsed document before anything runs.

A field costs 1 for each value it produces: a field under a list is paid once per item. A
list's size is its ``limit`` or ``first`` argument (at the top of its arguments or in an
input object of them, variables resolved), held to the resolvers' page bounds; a list
without one counts ``DEFAULT_LIST_SIZE`` items. A list of scalars (``projectIds``) costs 1:
its items are not resolved one by one. A root operation field (``listPlugins``,
``countPlugins``, a mutation...) is a resolver that reads the store: it costs
``ROOT_FIELD_COST`` more. Aliases count as the fields they repeat; a fragment costs what
it selects, each time it is spread.

The walk is bounded whatever the document: each fragment's cost is computed once (spread
a thousand times, it is multiplied, not walked again), a fragment that spreads itself is
refused, and so is nesting (through fragments too) past ``MAX_SELECTION_DEPTH``, as are
fragments spread inside each other deeper than that. Costs
saturate at ``COST_CEILING``.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLField,
    GraphQLInterfaceType,
    GraphQLList,
    GraphQLNamedType,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    get_named_type,
    is_input_object_type,
    is_interface_type,
    is_object_type,
    is_union_type,
)
from graphql.type import SchemaMetaFieldDef, TypeMetaFieldDef
from graphql.utilities import value_from_ast_untyped

from executor.api.graphql.guard import MAX_QUERY_DEPTH
from executor.api.graphql.resolvers import DEFAULT_PAGE, MAX_PAGE

__all__ = [
    "COST_CEILING",
    "DEFAULT_LIST_SIZE",
    "INTROSPECTION_FIELDS",
    "MAX_SELECTION_DEPTH",
    "ROOT_FIELD_COST",
    "CostRefused",
    "asks_introspection",
    "document_cost",
]

# A list without a limit: the resolvers' default page (and the default plugin quota).
DEFAULT_LIST_SIZE = DEFAULT_PAGE
# A root field is a resolver reading the store (1,000 aliases of listPlugins took 24.5 s
# with few plugins: the reads, not the results, cost). Priced as a full page of results, so
# that aliasing a field that answers little (countPlugins: one Int) is no way around the
# budget.
ROOT_FIELD_COST = 1000
MAX_SELECTION_DEPTH = MAX_QUERY_DEPTH
COST_CEILING = 10**15
SIZE_ARGUMENTS = ("limit", "first")
INTROSPECTION_FIELDS = frozenset({"__schema", "__type"})


class CostRefused(Exception):
    """A document whose cost cannot be computed: its fragments loop, or it nests too deep."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def _check_depth(depth: int) -> None:
    if depth > MAX_SELECTION_DEPTH:
        raise CostRefused(
            f"the query selects fields {depth} levels deep (counting its fragments); at most "
            f"{MAX_SELECTION_DEPTH} are allowed: send a flatter query",
            "query_too_deep",
        )


def _capped(value: int) -> int:
    return min(value, COST_CEILING)


@functools.lru_cache(maxsize=8)
def _introspection_sizes(schema: GraphQLSchema) -> dict[tuple[str, str], int]:
    """The longest each introspection list can be in ``schema`` (it is small and fixed)."""
    types = list(schema.type_map.values())
    fields = [t.fields for t in types if is_object_type(t) or is_interface_type(t)]
    inputs = [t.fields for t in types if is_input_object_type(t)]
    args = [len(f.args) for group in fields for f in group.values()]
    args += [len(d.args) for d in schema.directives]
    possible = [len(schema.get_possible_types(t)) for t in types if is_union_type(t)]
    possible += [len(schema.get_possible_types(t)) for t in types if is_interface_type(t)]
    enums = [len(getattr(t, "values", {})) for t in types]
    interfaces = [len(getattr(t, "interfaces", ())) for t in types]
    return {
        ("__Schema", "types"): len(types),
        ("__Schema", "directives"): len(schema.directives),
        ("__Type", "fields"): max(map(len, fields), default=0),
        ("__Type", "inputFields"): max(map(len, inputs), default=0),
        ("__Type", "enumValues"): max(enums, default=0),
        ("__Type", "interfaces"): max(interfaces, default=0),
        ("__Type", "possibleTypes"): max(possible, default=0),
        ("__Field", "args"): max(args, default=0),
        ("__Directive", "args"): max(args, default=0),
    }


def _list_size(node: FieldNode, variables: dict[str, Any]) -> int:
    """Items a list field asks for: its ``limit``/``first``, held to the page bounds."""
    for argument in node.arguments or ():
        value = value_from_ast_untyped(argument.value, variables)
        if isinstance(value, dict):
            sizes = [value.get(name) for name in SIZE_ARGUMENTS]
        else:
            sizes = [value] if argument.name.value in SIZE_ARGUMENTS else []
        for size in sizes:
            # as the resolvers read it: 0 is the default page, a negative size one item
            if isinstance(size, int) and not isinstance(size, bool) and size != 0:
                return max(1, min(size, MAX_PAGE))
    return DEFAULT_LIST_SIZE


@dataclass
class _Walk:
    """One document's cost walk; fragments are priced once each, on their first spread."""

    schema: GraphQLSchema
    fragments: dict[str, FragmentDefinitionNode]
    variables: dict[str, Any]
    sizes: dict[tuple[str, str], int]
    priced: dict[str, tuple[int, int]] = field(default_factory=dict)  # name: (cost, height)
    open_spreads: list[str] = field(default_factory=list)

    def _field_def(self, parent: GraphQLNamedType | None, name: str) -> GraphQLField | None:
        if name == "__schema":
            return SchemaMetaFieldDef
        if name == "__type":
            return TypeMetaFieldDef
        if isinstance(parent, GraphQLObjectType | GraphQLInterfaceType):
            fields: dict[str, GraphQLField] = parent.fields
            return fields.get(name)
        return None  # an unknown field: validation names it; here it costs as a leaf

    def selections(
        self, node: SelectionSetNode, parent: GraphQLNamedType | None, depth: int, root: bool
    ) -> tuple[int, int]:
        """The (cost, height) of a selection set at ``depth`` (height: levels below it)."""
        _check_depth(depth)
        cost = height = 0
        for selection in node.selections:
            if isinstance(selection, FieldNode):
                one, below = self.field(selection, parent, depth, root)
            elif isinstance(selection, InlineFragmentNode):
                condition = selection.type_condition
                typed = self.schema.get_type(condition.name.value) if condition else parent
                one, below = self.selections(selection.selection_set, typed, depth, root)
            elif isinstance(selection, FragmentSpreadNode):
                one, below = self.spread(selection, depth, root)
            else:  # no other kind of selection exists
                continue
            cost, height = _capped(cost + one), max(height, below)
        return cost, height

    def field(
        self, node: FieldNode, parent: GraphQLNamedType | None, depth: int, root: bool
    ) -> tuple[int, int]:
        name = node.name.value
        base = ROOT_FIELD_COST if root and not name.startswith("__") else 1
        definition = self._field_def(parent, name)
        if node.selection_set is None:
            return base, 0
        named = get_named_type(definition.type) if definition else None
        cost, height = self.selections(node.selection_set, named, depth + 1, root=False)
        if definition is not None and _is_list(definition.type):
            size = self.sizes.get((parent.name, name)) if parent else None
            cost = _capped(cost * (size if size is not None else _list_size(node, self.variables)))
        return _capped(base + cost), height + 1

    def spread(self, node: FragmentSpreadNode, depth: int, root: bool) -> tuple[int, int]:
        name = node.name.value
        fragment = self.fragments.get(name)
        if fragment is None:
            return 0, 0  # an unknown fragment: validation names it
        if name in self.open_spreads:
            loop = " -> ".join([*self.open_spreads[self.open_spreads.index(name) :], name])
            raise CostRefused(
                f"fragment {name!r} spreads itself ({loop}): a query must be finite",
                "fragment_cycle",
            )
        key = f"{name}@root" if root else name  # a root field costs more than a nested one
        if key not in self.priced:
            if len(self.open_spreads) >= MAX_SELECTION_DEPTH:
                raise CostRefused(
                    f"the query spreads fragments inside each other more than "
                    f"{MAX_SELECTION_DEPTH} deep (from {self.open_spreads[0]!r}): send a "
                    "flatter query",
                    "query_too_deep",
                )
            self.open_spreads.append(name)
            typed = self.schema.get_type(fragment.type_condition.name.value)
            self.priced[key] = self.selections(fragment.selection_set, typed, depth, root)
            self.open_spreads.pop()
        cost, height = self.priced[key]
        _check_depth(depth + height)
        return cost, height


def _is_list(kind: Any) -> bool:
    return isinstance(kind.of_type if isinstance(kind, GraphQLNonNull) else kind, GraphQLList)


def _operations(
    document: DocumentNode, operation_name: str | None
) -> list[OperationDefinitionNode]:
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if operation_name is None:
        return operations
    return [o for o in operations if o.name is not None and o.name.value == operation_name]


def document_cost(
    schema: GraphQLSchema,
    document: DocumentNode,
    variables: Mapping[str, Any] | None = None,
    operation_name: str | None = None,
) -> int:
    """The cost of the operation that would run (the dearest one if that is not decided);
    CostRefused if fragments loop or nest too deep."""
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    walk = _Walk(schema, fragments, dict(variables or {}), _introspection_sizes(schema))
    costs = [0]
    for operation in _operations(document, operation_name):
        kind = operation.operation
        root = schema.mutation_type if kind == OperationType.MUTATION else schema.query_type
        costs.append(walk.selections(operation.selection_set, root, 1, root=True)[0])
    return max(costs)


def asks_introspection(document: DocumentNode) -> bool:
    """Whether any field of the document (in any operation or fragment) is ``__schema`` or
    ``__type``; ``__typename`` is not introspection of the schema."""
    stack: list[Any] = list(document.definitions)
    while stack:
        node = stack.pop()
        if isinstance(node, FieldNode) and node.name.value in INTROSPECTION_FIELDS:
            return True
        selection_set = getattr(node, "selection_set", None)
        if selection_set is not None:
            stack.extend(selection_set.selections)
    return False
