"""The JSON Schema of metrics.json: shipped, printed by ``wtraj schema``, and describing every field.

Every metrics.json the tests write is validated against it (``conftest.py``).
"""

from __future__ import annotations

import json

import pytest

from wtraj.cli import main
from wtraj.report.build import SCHEMA_VERSION
from wtraj.report.schema import metrics_schema

jsonschema = pytest.importorskip("jsonschema", reason="jsonschema is not installed (the [test] extra has it)")


def test_schema_is_valid_and_matches_the_writer():
    schema = metrics_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["properties"]["schema_version"]["const"] == SCHEMA_VERSION


def _fields(node, path="metrics.json"):
    """Every property of the schema with its path."""
    for name, child in node.get("properties", {}).items():
        yield f"{path}.{name}", child
        yield from _fields(child, f"{path}.{name}")
    if isinstance(node.get("items"), dict):
        yield from _fields(node["items"], f"{path}[]")


def test_every_field_is_described():
    fields = list(_fields(metrics_schema()))
    assert len(fields) > 60
    undocumented = [path for path, node in fields if len(node.get("description", "")) < 8]
    assert not undocumented


def test_schema_command_prints_the_schema(capsys):
    assert main(["schema"]) == 0
    assert json.loads(capsys.readouterr().out) == metrics_schema()


def test_schema_rejects_a_wrong_file():
    validator = jsonschema.Draft202012Validator(metrics_schema())
    assert not validator.is_valid({"schema": "wtraj.analyze", "schema_version": 1})
    assert not validator.is_valid({"schema": "wtraj.analyze", "schema_version": 2})
