"""The `flujo` command line and what the README promises."""
