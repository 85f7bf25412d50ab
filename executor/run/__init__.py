"""Running invocations: dispatch, runner, sandbox, warm pool, recovery, output."""
