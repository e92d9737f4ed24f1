"""Engine layer: the runner, agents, cassettes, telemetry, the fake model server."""
