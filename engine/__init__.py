"""Async runner for Flujo specs (imports `flujo.spec`, never `flujo.bot`)."""
