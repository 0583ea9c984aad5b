"""The API's error replies: one JSON shape, {"error": ..., "fields": {...}}.

flask-openapi3 validates path parameters and request bodies with the pydantic
models in `studio.api.schemas` and hands every failure to `validation_error`,
which answers in that shape: 404 for a stream id that cannot exist, 400 with
one message per field for a body.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import get_type_hints

from flask import Response, current_app, jsonify, request
from pydantic import BaseModel
from pydantic import ValidationError as PydanticError

from studio.api.schemas import StreamPath
from studio.api.target_schemas import TargetPath
from studio.input_guard import BadInput, load_json

STREAM_NOT_FOUND = "Stream not found."
TARGET_NOT_FOUND = "Target not found."
JSON_CONTENT_TYPE = "Send a JSON body with 'Content-Type: application/json'."


def error_reply(
    status: int,
    message: str,
    fields: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    """The JSON error body every API error has: {"error": ..., "fields": {...}}."""
    reply = jsonify(error=message, fields=fields or {})
    reply.status_code = status
    reply.headers.update(headers or {})
    return reply


def json_object_problem() -> str | None:
    """What is wrong with the request body as a JSON object, or None if nothing.

    Checked before the library validates the body: it reads a body sent with
    another content type as null and accepts a JSON *string* holding an object,
    and both must be refused with a message that says what to send. The body
    must be UTF-8 (RFC 8259), which is also what the library's parser reads.
    """
    if request.mimetype != "application/json":
        return JSON_CONTENT_TYPE
    try:
        data = load_json(request.get_data().decode("utf-8") or "null")
    except BadInput as exc:
        return str(exc)
    except (ValueError, UnicodeDecodeError) as exc:
        return f"The body is not valid JSON: {exc}."
    if not isinstance(data, dict):
        return "The body must be a JSON object."
    return None


def validation_error(exc: PydanticError) -> Response:
    """The reply to a request flask-openapi3 refused (its validation callback)."""
    if exc.title == StreamPath.__name__ or exc.title.endswith("Path"):
        # An id that cannot be a stream id names none of the caller's streams:
        # the same 404 as an unknown id, so ids are never told apart (and
        # likewise for the ids after it in the path).
        if _bad_stream_id(exc):
            return error_reply(404, STREAM_NOT_FOUND)
        other = TARGET_NOT_FOUND if exc.title == TargetPath.__name__ else "Not found."
        return error_reply(404, other)
    if exc.title.endswith("Query"):
        return error_reply(400, "Invalid query parameters.", field_errors(exc, None))
    # The body is a JSON object (`json_object_problem` ran first): per-field errors.
    return error_reply(400, "Invalid request body.", field_errors(exc, body_model()))


def _bad_stream_id(exc: PydanticError) -> bool:
    return any(error["loc"][:1] == ("stream_id",) for error in exc.errors())


def body_model() -> type[BaseModel] | None:
    """The model the current view takes as its JSON body (its `body` parameter)."""
    view = current_app.view_functions.get(request.endpoint or "")
    return _body_annotation(view) if view is not None else None


@functools.cache
def _body_annotation(view: Callable) -> type[BaseModel] | None:
    # flask-openapi3's convention: a view's `body` parameter names its body model.
    return get_type_hints(view).get("body")


def field_errors(exc: PydanticError, model: type[BaseModel] | None) -> dict[str, str]:
    """One message per invalid field, named by its dotted path ("body" for the whole)."""
    allowed = ", ".join(model.model_fields) if model is not None else ""
    fields: dict[str, str] = {}
    for error in exc.errors():
        name = ".".join(str(part) for part in error["loc"]) or "body"
        if error["type"] == "extra_forbidden":
            message = f"Unknown field (allowed: {allowed})."
        elif error["type"] == "missing":
            message = "This field is required."
        else:
            message = error["msg"].removeprefix("Value error, ").rstrip(".") + "."
        fields.setdefault(name, message)
    return fields
