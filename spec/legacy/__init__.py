"""flujo 0.x blueprints: reading them (`blueprint`) and rewriting them (`migrate`)."""
