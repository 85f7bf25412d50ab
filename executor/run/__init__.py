"""Running invocations: dispatch (jobs, leases), the runner (attempt, outcome, ending, log
writer), the sandbox (containers, follow, exit cause), warm pool, recovery, output."""
