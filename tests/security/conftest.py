"""One executor per OCI runtime per module; every attack runs under runc and runsc."""

from __future__ import annotations

import pytest

from tests.conftest import ServerFactory
from tests.security.attacks import RUNTIMES, SHM_MIB, TIMEOUT_S, Attacker


@pytest.fixture(scope="module", params=RUNTIMES)
def attacker(
    request: pytest.FixtureRequest,
    server_factory: ServerFactory,
    tmp_path_factory: pytest.TempPathFactory,
) -> Attacker:
    """An executor whose plugins run under the runtime of the param, with a short deadline
    and a /dev/shm of SHM_MIB; a module's MAX_CONCURRENT_RUNS (default 2) runs at once."""
    sandbox = {"oci_runtime": request.param, "timeout_s": TIMEOUT_S[request.param]}
    concurrent = getattr(request.module, "MAX_CONCURRENT_RUNS", 2)
    server = server_factory(sandbox={**sandbox, "shm_mib": SHM_MIB}, max_concurrent_runs=concurrent)
    return Attacker(server, tmp_path_factory.mktemp(f"attacks-{request.param}"))
