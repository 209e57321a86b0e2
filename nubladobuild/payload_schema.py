"""The JSON Schema of payload.yaml, made from the pydantic models.

Editors (the YAML language server's ``# yaml-language-server: $schema=``
modeline) and other tools check a payload.yaml with it before
nubladobuild runs. The pydantic models in :mod:`nubladobuild.schema` stay
the authority: the JSON Schema holds the shapes, required keys, enums,
limits and character rules, not the checks that need the file system or
the image (protected trees, files, locks), which ``nublado-build
validate`` adds. The package ships the schema as
``nubladobuild/data/payload.schema.json``; a unit test keeps it equal to
what the models give.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from nubladobuild.schema import Payload

__all__ = ["SCHEMA_FILE", "SCHEMA_ID", "payload_json_schema", "schema_text"]

#: The schema the package ships.
SCHEMA_FILE = Path(__file__).resolve().parent / "data" / "payload.schema.json"
#: The schema's ``$id``: a name, not a place anything is fetched from.
SCHEMA_ID = "urn:nubladobuild:payload.schema.json"


def payload_json_schema() -> dict[str, Any]:
    """Return the JSON Schema (draft 2020-12) of payload.yaml.

    Returns
    -------
    dict
        The schema, ready for :func:`json.dumps` or :mod:`jsonschema`.
    """
    schema = Payload.model_json_schema(mode="validation")
    _close_pattern_maps(schema)
    _not_null(schema["properties"], NOT_NULL)
    head = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "nubladobuild payload.yaml",
    }
    return {**head, **{k: v for k, v in schema.items() if k != "title"}}


def schema_text() -> str:
    """Return the schema as the text the package ships (stable, one newline).

    Returns
    -------
    str
        Indented JSON with a final newline.
    """
    return json.dumps(payload_json_schema(), indent=2, ensure_ascii=False) + "\n"


#: Top-level keys that may be absent but not null (``kernel: ~`` is refused).
NOT_NULL = ("kernel", "kernels")


def _not_null(properties: dict[str, Any], names: tuple[str, ...]) -> None:
    """Drop the ``null`` branch pydantic gives an optional field's schema."""
    for name in names:
        prop = properties[name]
        branches = [b for b in prop.pop("anyOf") if b != {"type": "null"}]
        assert len(branches) == 1, (name, branches)
        prop.update(branches[0])
        prop.pop("default", None)


def _close_pattern_maps(node: object) -> None:
    """Refuse keys outside ``patternProperties`` (pydantic leaves them open).

    A ``dict[EnvName, ...]`` becomes ``patternProperties`` alone, which lets
    any other key through; validate refuses such names, so the schema does
    too.
    """
    if isinstance(node, dict):
        if "patternProperties" in node and "additionalProperties" not in node:
            node["additionalProperties"] = False
        for value in node.values():
            _close_pattern_maps(value)
    elif isinstance(node, list):
        for value in node:
            _close_pattern_maps(value)
