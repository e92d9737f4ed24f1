"""JSON Schema of the spec format (for editors, the Meta-Agent, and other tools)."""

from __future__ import annotations

import json
from typing import Any

SCHEMA_ID = "https://flujo.dev/schema/pipeline-1.json"


def pipeline_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a pipeline file."""
    from flujo.spec.model import Pipeline

    schema = Pipeline.model_json_schema(by_alias=True, mode="validation")
    # A validator may be written as just its name; pydantic's schema only knows the
    # mapping form (the string is expanded by a before-validator).
    items = schema["$defs"]["AgentStep"]["properties"]["validators"]["items"]
    schema["$defs"]["AgentStep"]["properties"]["validators"]["items"] = {
        "anyOf": [{"type": "string", "minLength": 1, "description": "Validator skill name."}, items]
    }
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID, **schema}


def schema_text() -> str:
    return json.dumps(pipeline_schema(), indent=2, ensure_ascii=False) + "\n"
