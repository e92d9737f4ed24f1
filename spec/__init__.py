"""The Flujo pipeline spec: schema, loading with source positions, registry."""
