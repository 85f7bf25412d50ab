"""The Kili plugin API's schema (the operations the ``kili`` SDK sends), made executable."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from ariadne import MutationType, QueryType, ScalarType, make_executable_schema
from graphql import FieldNode, GraphQLError, GraphQLSchema, OperationDefinitionNode
from graphql.validation import ValidationRule

from executor.api.graphql import resolvers

__all__ = ["KnownOperationsRule", "build_schema"]

TYPE_DEFS = """
scalar DateTime

enum PluginHandlerType {
  onSubmit
  onReview
  onCustomInterfaceClick
  onProjectUpdated
  onSendBackToQueue
}

input PluginNameInput { pluginName: String! }
input PluginRunnerInput {
  eventMatcher: [String!]
  handlerTypes: [PluginHandlerType!]
  pluginName: String!
}
input WebhookInput {
  eventMatcher: [String!]
  handlerTypes: [PluginHandlerType!]
  header: String
  pluginName: String!
  webhookUrl: String!
}
input PluginProjectWhere { pluginName: String!, projectId: ID! }
input PluginWhere { name: String }
input PluginLogsInput {
  projectId: ID!
  pluginName: String!
  createdAt: DateTime
  limit: Int
  skip: Int
}
input PluginBuildErrorsInput {
  pluginName: String!
  createdAt: DateTime
  limit: Int
  skip: Int
}

type LogMetadata { assetId: String, labelId: String }
type PluginLog {
  content: String!
  createdAt: DateTime!
  logType: String!
  metadata: LogMetadata!
  pluginName: String!
  projectId: ID!
  runId: ID!
}
type PluginBuildError {
  content: String!
  createdAt: DateTime!
  logType: String!
  pluginName: String!
}
type Plugin {
  id: ID!
  name: String!
  projectIds: [ID!]!
  createdAt: DateTime!
  updatedAt: DateTime!
  status: String
}

type Query {
  getPluginRunnerStatus(name: String!): String!
  getPluginLogs(data: PluginLogsInput!): [PluginLog!]!
  getPluginBuildErrors(data: PluginBuildErrorsInput!): [PluginBuildError!]!
  listPlugins: [Plugin!]!
  countPlugins(where: PluginWhere): Int!
}

type Mutation {
  createPlugin(data: PluginNameInput!): String!
  generateUpdateUrl(data: PluginNameInput!): String!
  createPluginRunner(data: PluginRunnerInput!): String!
  updatePluginRunner(data: PluginRunnerInput!): String!
  activatePluginOnProject(where: PluginProjectWhere!): String!
  deactivatePluginOnProject(where: PluginProjectWhere!): String!
  deletePlugin(where: PluginNameInput!): String!
  createWebhook(data: WebhookInput!): String!
  updateWebhook(data: WebhookInput!): String!
}
"""

datetime_scalar = ScalarType("DateTime")


@datetime_scalar.serializer
def _serialize_datetime(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@datetime_scalar.value_parser
def _parse_datetime(value: Any) -> datetime:
    if not isinstance(value, str):
        raise ValueError("a DateTime is an ISO 8601 string, e.g. 2024-05-01T12:00:00.000Z")
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


class KnownOperationsRule(ValidationRule):
    """An operation this executor does not implement is named as such, with the list of
    those it does (before graphql-core's generic "Cannot query field")."""

    def enter_operation_definition(self, node: OperationDefinitionNode, *_args: Any) -> None:
        schema = self.context.schema
        root = schema.mutation_type if node.operation.value == "mutation" else schema.query_type
        if root is None:
            return
        for selection in node.selection_set.selections:
            if not isinstance(selection, FieldNode):
                continue
            name = selection.name.value
            if name not in root.fields and not name.startswith("__"):
                supported = ", ".join(sorted(root.fields))
                self.report_error(
                    GraphQLError(
                        f"Kili operation {name!r} is not implemented by this executor; "
                        f"the {node.operation.value} operations it implements: {supported}",
                        selection,
                        extensions={"code": "operation_not_implemented"},
                    )
                )


def build_schema() -> GraphQLSchema:
    query, mutation = QueryType(), MutationType()
    for name, resolver in resolvers.QUERIES.items():
        query.set_field(name, resolver)
    for name, resolver in resolvers.MUTATIONS.items():
        mutation.set_field(name, resolver)
    return make_executable_schema(TYPE_DEFS, query, mutation, datetime_scalar)
