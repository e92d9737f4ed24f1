"""GitHub App and local-repo bot for Flujo (imports `flujo.engine` and `flujo.spec`)."""
