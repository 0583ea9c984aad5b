"""The OpenAPI 3.1 document, built from the route registry and the pydantic
models the views validate with."""

from __future__ import annotations

import json

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from studio.api.registry import ApiRegistry, Operation
from studio.api.schemas import Error

_REF = "#/components/schemas/{model}"
_ERRORS = {
    400: "Invalid input (a NUL character, a lone surrogate or JSON nested too deeply "
    "anywhere in the path, query or body is always refused); `fields` names each bad "
    "field of a body. Nothing was changed.",
    401: "Missing, unknown or revoked API token.",
    404: "No such stream among yours (another creator's stream is 404 too).",
    429: "Too many requests with this token (STUDIO_RATELIMIT_API), or with invalid tokens "
    "from this address (STUDIO_RATELIMIT_API_AUTH_FAILURES); see Retry-After.",
}


def build(registry: ApiRegistry, prefix: str, server_url: str) -> dict:
    """The OpenAPI 3.1 document of every documented operation in `registry`."""
    operations = [op for op in registry.operations if op.documented]
    schemas = _component_schemas(operations)
    paths: dict[str, dict] = {}
    for op in operations:
        paths.setdefault(prefix + op.path, {})[op.method.lower()] = _operation(op, registry)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Live Studio API",
            "version": "1",
            "description": (
                "Create and control live streams. Authenticate with an API token "
                "(created on the API tokens page): `Authorization: Bearer lst_...`."
            ),
        },
        "servers": [{"url": server_url}],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An API token, `lst_...`.",
                }
            },
        },
    }


def _component_schemas(operations: list[Operation]) -> dict:
    models: set[type[BaseModel]] = {Error}
    for op in operations:
        if op.body is not None:
            models.add(op.body)
        models.update(model for model in op.responses.values() if model is not None)
    ordered = sorted(models, key=lambda model: model.__name__)
    # Request models are described as validated, responses as serialised.
    modes = [(m, "validation" if _is_request(m, operations) else "serialization") for m in ordered]
    _, top = models_json_schema(modes, ref_template=_REF)
    return top.get("$defs", {})


def _is_request(model: type[BaseModel], operations: list[Operation]) -> bool:
    return any(op.body is model for op in operations)


def _operation(op: Operation, registry: ApiRegistry) -> dict:
    doc: dict = {
        "operationId": op.endpoint.split(".", 1)[-1],
        "summary": op.summary,
        "responses": _responses(op),
    }
    if op.description:
        doc["description"] = op.description
    if op.path_params:
        doc["parameters"] = [
            {
                "name": name,
                "in": "path",
                "required": True,
                "description": registry.param_docs.get(name, ""),
                "schema": {"type": "string"},
            }
            for name in op.path_params
        ]
    if op.body is not None:
        doc["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": _ref(op.body)}}},
        }
    doc["security"] = [{"bearer": []}] if op.auth else []
    return doc


def _responses(op: Operation) -> dict:
    responses: dict[str, dict] = {}
    for code, model in sorted(op.responses.items()):
        entry: dict = {"description": (model.__doc__ or "No content.").strip().split("\n")[0]}
        if model is not None:
            entry["content"] = {"application/json": {"schema": {"$ref": _ref(model)}}}
        if code == 201:
            entry["headers"] = {
                "Location": {
                    "description": "URL of the new resource.",
                    "schema": {"type": "string"},
                }
            }
        responses[str(code)] = entry
    # Every operation: the input guard refuses bad text in the path and query too.
    errors = [400]
    if op.auth:
        errors.append(401)
    if op.path_params:
        errors.append(404)
    if op.auth:
        errors.append(429)  # the API rate limit is counted per token
    for code in errors:
        responses[str(code)] = {
            "description": _ERRORS[code],
            "content": {"application/json": {"schema": {"$ref": _ref(Error)}}},
        }
    return responses


def _ref(model: type[BaseModel]) -> str:
    return _REF.format(model=model.__name__)


def example_body(model: type[BaseModel]) -> str:
    """The model's first documented example as JSON (for curl examples)."""
    examples = model.model_json_schema().get("examples") or [{}]
    return json.dumps(examples[-1])


def schema_rows(spec: dict, name: str) -> list[dict[str, str]]:
    """A component schema's fields for the reference page: name, type, required, notes."""
    schema = spec["components"]["schemas"][name]
    required = set(schema.get("required", []))
    rows = []
    for field_name, prop in schema.get("properties", {}).items():
        notes = prop.get("description", "")
        limits = [f"{key} {prop[key]}" for key in ("minLength", "maxLength") if key in prop]
        rows.append(
            {
                "name": field_name,
                "type": _type_name(prop),
                "required": "yes" if field_name in required else "no",
                "notes": "; ".join(filter(None, [notes, ", ".join(limits)])),
            }
        )
    return rows


def _type_name(prop: dict) -> str:
    if "$ref" in prop:
        return prop["$ref"].rsplit("/", 1)[-1]
    if "anyOf" in prop:
        return " or ".join(_type_name(option) for option in prop["anyOf"])
    if "enum" in prop:
        return " | ".join(json.dumps(value) for value in prop["enum"])
    if prop.get("type") == "array":
        return f"array of {_type_name(prop.get('items', {}))}"
    if prop.get("format"):
        return f"{prop['type']} ({prop['format']})"
    return str(prop.get("type", "any"))
