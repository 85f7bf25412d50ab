"""Tenants and keys from the CLI: create, show the key once, use it, list, revoke, audit."""

from __future__ import annotations

import json

from tests.conftest import RunningServer
from tests.e2e.test_cli import cli


def test_operator_makes_a_tenant_and_a_key_that_works_until_revoked(
    server: RunningServer,
) -> None:
    assert "Tenant cli-team created." in cli(server, "tenants", "create", "cli-team").stdout
    tenants = json.loads(cli(server, "tenants", "list", "--json").stdout)
    assert {"default", "cli-team"} <= {t["name"] for t in tenants}
    created = cli(
        server,
        "keys",
        "create",
        "-t",
        "cli-team",
        "--name",
        "ci",
        "-s",
        "plugins:read",
        "-s",
        "logs:read",
    )
    secret = created.stdout.strip().splitlines()[-1]
    assert secret.startswith("pe_key_") and "Shown once" in created.stderr
    assert json.loads(cli(server, "list", "--json", key=secret).stdout) == []
    refused = cli(server, "tenants", "list", key=secret, ok=False)
    assert refused.returncode == 1 and "operator" in refused.stderr
    (listed,) = json.loads(cli(server, "keys", "list", "-t", "cli-team", "--json").stdout)
    assert listed["scopes"] == ["logs:read", "plugins:read"] and "key" not in listed
    cli(server, "keys", "revoke", listed["id"], "-t", "cli-team")
    revoked = cli(server, "list", key=secret, ok=False)
    assert revoked.returncode == 1 and "revoked" in revoked.stderr
    audit = json.loads(cli(server, "audit", "-t", "cli-team", "--json").stdout)
    assert [e["action"] for e in audit] == ["key.revoke", "key.create", "tenant.create"]
