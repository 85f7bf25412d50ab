"""The Kili-compatible GraphQL API: the plugin operations the ``kili`` SDK sends."""

from executor.api.graphql.route import graphql_router

__all__ = ["graphql_router"]
