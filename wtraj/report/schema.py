"""The JSON Schema of ``metrics.json`` (shipped as ``wtraj/report/metrics.schema.json``).

Every field is described in the schema itself; ``wtraj schema`` prints it.
"""

from __future__ import annotations

import json
from pathlib import Path

SCHEMA_PATH = Path(__file__).with_name("metrics.schema.json")


def metrics_schema_text() -> str:
    """The schema file as shipped."""
    return SCHEMA_PATH.read_text(encoding="utf-8")


def metrics_schema() -> dict:
    """The schema as a dict (for ``jsonschema.validate``)."""
    return json.loads(metrics_schema_text())
