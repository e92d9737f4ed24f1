"""The learning loop: telemetry in, verified and ranked suggestions out (`flujo suggest`)."""
