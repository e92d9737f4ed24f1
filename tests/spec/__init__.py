"""Spec layer: schema, loading, lint, expressions, patches, 0.x blueprints, review."""
