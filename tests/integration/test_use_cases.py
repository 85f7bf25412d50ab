"""The use cases of the catalog and of uploads, called in-process as the routes (and any
other front end) call them: each records its audit entry with its change, and a refused
one records nothing."""

from __future__ import annotations

import pytest

from executor.errors import Conflict, NotFound
from executor.schemas.plugins import ActivationIn
from executor.store import audit as audit_store
from executor.tenancy.access import operator_caller
from tests.conftest import PLUGINS, RunningServer


def _trail(server: RunningServer) -> list[tuple[str, str, object]]:
    with server.service.db.session() as session:
        entries = audit_store.list_entries(session, tenant_id="default", limit=1000)
        return [(e.action, e.target, e.detail) for e in reversed(entries)]


def test_each_use_case_is_audited_with_its_change(server: RunningServer) -> None:
    catalog, caller = server.service.catalog, operator_caller()
    before = len(_trail(server))
    source = (PLUGINS / "counter" / "main.py").read_bytes()
    first = server.service.uploads.upload(caller, "use-cases", "main.py", source)
    assert server.wait_build("use-cases", first.number)["status"] == "ACTIVE"
    second = server.service.uploads.upload(caller, "use-cases", "main.py", source + b"\n# v2\n")
    assert server.wait_build("use-cases", second.number)["status"] == "ACTIVE"
    shown = catalog.activate(caller, "use-cases", "p-use-cases", ActivationIn())
    assert (shown.plugin, shown.project_id, shown.runs_version) == ("use-cases", "p-use-cases", 2)
    rolled = catalog.rollback(caller, "use-cases")
    assert (rolled.current_version, rolled.previous_version) == (1, 2)
    catalog.deactivate(caller, "use-cases", "p-use-cases")
    catalog.delete(caller, "use-cases")
    assert _trail(server)[before:] == [
        ("plugin.upload", "use-cases", {"version": 1}),
        ("plugin.upload", "use-cases", {"version": 2}),
        ("plugin.activate", "use-cases", {"project_id": "p-use-cases"}),
        ("plugin.rollback", "use-cases", {"from": 2, "to": 1}),
        ("plugin.deactivate", "use-cases", {"project_id": "p-use-cases"}),
        ("plugin.delete", "use-cases", None),
    ]


def test_a_refused_use_case_records_nothing(server: RunningServer) -> None:
    catalog, caller = server.service.catalog, operator_caller()
    source = (PLUGINS / "counter" / "main.py").read_bytes()
    version = server.service.uploads.upload(caller, "refused-cases", "main.py", source)
    assert server.wait_build("refused-cases", version.number)["status"] == "ACTIVE"
    before = _trail(server)
    with pytest.raises(Conflict, match="no ACTIVE version before v1"):
        catalog.rollback(caller, "refused-cases")
    with pytest.raises(NotFound, match="has no version 2"):
        catalog.activate(caller, "refused-cases", "p-refused", ActivationIn(version=2))
    with pytest.raises(NotFound):
        catalog.deactivate(caller, "refused-cases", "p-never-activated")
    with pytest.raises(NotFound):
        catalog.delete(caller, "no-such-plugin")
    assert _trail(server) == before
