"""Wire formats (docs/architecture.md, "Wire formats"), one module per domain: request and
response bodies (``events``, ``plugins``, ``invocations``, ``tenancy``, ``operations``) and
the envelope a plugin reads (``envelope``). Request bodies derive from ``base.Strict``."""
