"""The OpenAPI 3.1 document of the JSON API and the reference page's view of it.

flask-openapi3 builds the document from the views and the pydantic models that
validate their requests and shape their replies: paths, typed path parameters,
request bodies, response schemas, security. This module holds only what the
library does not do:

- the app settings (`app_options`): title, the bearer scheme, our error
  callback and error model;
- `document`: the server URL (from the settings, so it is per deployment),
  paths relative to that server as before, the `Location` header of a 201,
  and without the generic validation-error reply the library adds to every
  operation (ours are declared per operation: a bad body is 400, a bad id 404);
- helpers for the server-rendered reference page (`templates/api/docs.html`).

Why flask-openapi3 and not spectree: path parameters are pydantic models
(typed, with patterns, validated like bodies) rather than Flask converters,
and the document is built per app, which fits the app factory. See docs/api.md.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from flask import Flask
from flask_openapi3 import Info, SecurityScheme

from studio.api.errors import validation_error
from studio.api.schemas import Error

ERROR_REF = {"$ref": "#/components/schemas/Error"}
LOCATION = {"description": "URL of the new resource.", "schema": {"type": "string"}}


def app_options() -> dict[str, Any]:
    """Keyword arguments of `flask_openapi3.OpenAPI` (the app class) for this API."""
    return {
        "info": Info(
            title="Live Studio API",
            version="1",
            description=(
                "Create and control live streams. Authenticate with an API token "
                "(created on the API tokens page): `Authorization: Bearer lst_...`."
            ),
        ),
        "security_schemes": {
            "bearer": SecurityScheme(
                type="http", scheme="bearer", description="An API token, `lst_...`."
            )
        },
        # The library's own document UI (Swagger and friends) stays off: the
        # reference page is ours, server-rendered, with no scripts.
        "doc_ui": False,
        "validation_error_status": 400,
        "validation_error_model": Error,
        "validation_error_callback": validation_error,
    }


def error_response(description: str) -> dict[str, Any]:
    """A documented error reply: `description`, with the Error body."""
    return {"description": description, "content": {"application/json": {"schema": ERROR_REF}}}


def document(app: Flask, prefix: str, server_url: str) -> dict[str, Any]:
    """The OpenAPI document of the operations under `prefix`, served from `server_url`."""
    spec = copy.deepcopy(app.api_doc)  # type: ignore[attr-defined]
    spec["servers"] = [{"url": server_url}]
    spec["paths"] = {
        path.removeprefix(prefix): item
        for path, item in spec["paths"].items()
        if path.startswith(prefix + "/")
    }
    for item in spec["paths"].values():
        for operation in item.values():
            responses = operation["responses"]
            if _is_generic_validation_error(responses):
                del responses["400"]
            if "201" in responses:
                responses["201"]["headers"] = {"Location": LOCATION}
    return spec


def _is_generic_validation_error(responses: dict) -> bool:
    schema = responses.get("400", {}).get("content", {}).get("application/json", {}).get("schema")
    return schema is not None and schema.get("type") == "array"


def operations(spec: dict) -> list[dict[str, Any]]:
    """The document's operations in order, flattened for the reference page."""
    found = []
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            body = operation.get("requestBody", {}).get("content", {}).get("application/json", {})
            found.append(
                {
                    "method": method.upper(),
                    "path": path,
                    "id": operation["operationId"],
                    "summary": operation.get("summary", ""),
                    "description": operation.get("description", ""),
                    "parameters": [
                        {**param, "type": _type_name(param["schema"])}
                        for param in operation.get("parameters", [])
                    ],
                    "body": _ref_name(body.get("schema", {})),
                    "example": _example(body),
                    "responses": sorted(operation["responses"].items()),
                }
            )
    return found


def _example(media: dict) -> str:
    """The body's last documented example as JSON (for the curl example)."""
    examples = [example["value"] for example in media.get("examples", {}).values()]
    return json.dumps(examples[-1] if examples else media.get("example", {}))


def _ref_name(schema: dict) -> str:
    return schema.get("$ref", "").rsplit("/", 1)[-1]


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
    if "const" in prop:  # a one-value Literal
        return json.dumps(prop["const"])
    if prop.get("type") == "array":
        return f"array of {_type_name(prop.get('items', {}))}"
    if prop.get("format"):
        return f"{prop['type']} ({prop['format']})"
    if prop.get("pattern"):
        return f"{prop['type']} matching {prop['pattern']}"
    return str(prop.get("type", "any"))
