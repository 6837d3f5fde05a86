"""The API's schema as OpenAPI 3.0, for the Swagger UI at ``/api/docs``.

FastAPI writes OpenAPI 3.1 (``/api/openapi.json``, the contract, which schemathesis checks);
the Swagger UI that the ``swagger-ui-bundle`` package ships (4.15) reads only 3.0 and shows
"Unable to render this definition" for 3.1. The schemas FastAPI and pydantic write use a few
3.1 (JSON Schema 2020-12) forms, each of which has a 3.0 spelling: ``anyOf [X, {type: null}]``
is ``X`` with ``nullable``, ``examples: [...]`` is ``example``, ``const`` is a one-value
``enum``, a numeric ``exclusiveMinimum`` is ``minimum`` with ``exclusiveMinimum: true``.
"""

from __future__ import annotations

from typing import Any

OPENAPI_30 = "3.0.3"
NULL = {"type": "null"}


def openapi_30(document: dict[str, Any]) -> dict[str, Any]:
    """A copy of the OpenAPI 3.1 ``document`` written as OpenAPI 3.0."""
    converted = _convert(document)
    converted["openapi"] = OPENAPI_30
    return converted


def _convert(value: Any) -> Any:
    if isinstance(value, list):
        return [_convert(item) for item in value]
    if not isinstance(value, dict):
        return value
    node = {key: _convert(item) for key, item in value.items()}
    for choice in ("anyOf", "oneOf"):
        if NULL in node.get(choice, []):
            node = _nullable(node, choice)
    if isinstance(node.get("type"), list):
        types = [kind for kind in node["type"] if kind != "null"]
        node["nullable"] = len(types) < len(node["type"]) or node.get("nullable", False)
        if len(types) == 1:
            node["type"] = types[0]
        else:
            del node["type"]
            node["anyOf"] = [{"type": kind} for kind in types]
    if isinstance(node.get("examples"), list):  # a schema's examples (not a media type's map)
        examples = node.pop("examples")
        if examples:
            node["example"] = examples[0]
    if "const" in node:
        node["enum"] = [node.pop("const")]
    for bound, limit in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if isinstance(node.get(bound), int | float) and not isinstance(node[bound], bool):
            node[limit] = node[bound]
            node[bound] = True
    return node


def _nullable(node: dict[str, Any], choice: str) -> dict[str, Any]:
    """``{anyOf: [X, {type: null}], ...}`` as ``{...X, nullable: true, ...}``."""
    options = [option for option in node.pop(choice) if option != NULL]
    if len(options) != 1:
        return {**node, choice: options, "nullable": True}
    (option,) = options
    if "$ref" in option:  # a $ref takes no siblings in 3.0
        return {**node, "allOf": [option], "nullable": True}
    return {**option, **node, "nullable": True}
