"""The gateway for ``plugin-executor run --api-url``: the server's own ``Gateway`` on a
throw-away SQLite store, so a local run reaches a local platform exactly as a served run
does (token check, rewrite, audit), and nothing is left behind.
"""

from __future__ import annotations

import math
import shutil
import tempfile
from datetime import datetime
from pathlib import Path
from types import TracebackType

from executor.gateway.policy import PlatformTargets
from executor.gateway.server import CONTAINER_SOCKET_DIR, SOCKET_NAME, Gateway
from executor.schemas.envelope import ApiInfo
from executor.settings import Settings
from executor.statuses import InvocationStatus
from executor.store import gateway as gateway_store
from executor.store import plugins as plugin_store
from executor.store import queue as queue_store
from executor.store.db import Database
from executor.store.tables import DEFAULT_TENANT, Invocation
from executor.tokens import hash_token, mint_token

__all__ = ["LocalGateway"]

SHORT_TMP = "/tmp"  # unix socket paths are short: keep the folder near the root
# One local session records one stand-in version per run, on its own throw-away store.
LOCAL_UNLIMITED = 2**31  # a local run stores one plugin version: no quota applies


class LocalGateway:
    """``with LocalGateway(settings, api_url) as gw:`` then ``gw.api_info(...)`` per run."""

    def __init__(self, settings: Settings, api_url: str) -> None:
        self._dir = Path(tempfile.mkdtemp(prefix="pe-run-", dir=SHORT_TMP))
        self.settings = settings.with_values(
            platform_api_url=api_url, data_dir=self._dir, gateway_socket_dir=self._dir / "run"
        )
        self.db = Database(f"sqlite:///{self._dir / 'local.db'}")
        self.gateway = Gateway(self.db, self.settings)

    @property
    def socket_dir(self) -> Path:
        return self.settings.resolved_gateway_socket_dir

    def __enter__(self) -> LocalGateway:
        self.db.migrate()
        self.gateway.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.gateway.stop()
        self.db.dispose()
        shutil.rmtree(self._dir, ignore_errors=True)

    def api_info(
        self, run_id: str, plugin: str, project_id: str, event_type: str, deadline: datetime
    ) -> ApiInfo:
        """A token for one run (recorded like a served invocation's) and where to use it."""
        token = mint_token()
        with self.db.session() as session:
            version = plugin_store.add_version(
                session,
                DEFAULT_TENANT,
                plugin,
                max_plugins=LOCAL_UNLIMITED,
                max_versions=LOCAL_UNLIMITED,
                handlers=[],
                requirements="",
                source_sha256="local",
                source=b"",
                runtime=self.settings.images.runtime_default_flavor,
            )
            event = queue_store.add_event(session, type=event_type, project_id=project_id)
            queue_store.add_invocation(
                session,
                Invocation(
                    id=run_id,
                    event_id=event.id,
                    plugin_id=version.plugin_id,
                    version_id=version.id,
                    plugin_name=plugin,
                    version_number=version.number,
                    project_id=project_id,
                    event_type=event_type,
                    status=InvocationStatus.RUNNING,
                ),
            )
            gateway_store.add_token(session, hash_token(token), run_id, project_id, deadline)
        # As a served run's: checked in memory; no other process can take a local run.
        self.gateway.live.grant(hash_token(token), run_id, project_id, 0, deadline)
        self.gateway.live.lease([run_id], math.inf)
        return ApiInfo(
            url=PlatformTargets(self.settings).plugin_url(project_id),
            token=token,
            socket=f"{CONTAINER_SOCKET_DIR}/{SOCKET_NAME}",
        )

    def finish(self, run_id: str) -> int:
        """Revoke the run's token; how many platform calls it made through the gateway."""
        self.gateway.live.revoke(run_id)
        self.gateway.live.settle(run_id)
        self.gateway.live.release(run_id)
        with self.db.session() as session:
            gateway_store.revoke_for(session, run_id)
            calls = gateway_store.count_calls(session, run_id)
        self.gateway.live.forget(run_id)
        return calls
