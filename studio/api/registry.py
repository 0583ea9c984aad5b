"""The API's routes, declared once.

`ApiRegistry.route` registers a Flask view *and* records what it accepts and
returns, and the OpenAPI document (`studio.api.openapi`) is built from those
records, so the document cannot drift from the code. The wrapper it installs
does the work every endpoint shares: bearer authentication, parsing and
validating the JSON body, turning domain errors into JSON errors, and
serialising the response model.
"""

from __future__ import annotations

import functools
import inspect
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from flask import Blueprint, Response, jsonify, request
from pydantic import BaseModel
from pydantic import ValidationError as PydanticError

from studio.api.auth import bearer_user
from studio.errors import StudioError
from studio.extensions import db
from studio.input_guard import BadInput, load_json

_RULE_VARIABLE = re.compile(r"<(?:[^:<>]+:)?([^<>]+)>")


class ApiError(Exception):
    """An error reply: nothing was changed."""

    def __init__(
        self,
        status: int,
        message: str,
        fields: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(message)
        self.status = status
        self.message = message
        self.fields = fields or {}
        self.headers = headers or {}


@dataclass(frozen=True)
class Operation:
    """One method on one route, as the OpenAPI document describes it."""

    rule: str  # Flask rule inside the blueprint: /streams/<stream_id>
    method: str
    endpoint: str
    summary: str
    description: str
    body: type[BaseModel] | None
    responses: dict[int, type[BaseModel] | None]
    auth: bool
    documented: bool
    path_params: tuple[str, ...] = field(default=())

    @property
    def path(self) -> str:
        """The rule in OpenAPI form: /streams/{stream_id}."""
        return _RULE_VARIABLE.sub(r"{\1}", self.rule)

    @property
    def success_status(self) -> int:
        return min(code for code in self.responses if 200 <= code < 300)


class ApiRegistry:
    """Routes of one blueprint, with what each accepts and returns."""

    def __init__(self, blueprint: Blueprint, param_docs: dict[str, str] | None = None):
        self.blueprint = blueprint
        self.param_docs = param_docs or {}
        self.operations: list[Operation] = []

    def route(
        self,
        rule: str,
        *,
        methods: list[str],
        responses: dict[int, type[BaseModel] | None],
        body: type[BaseModel] | None = None,
        auth: bool = True,
        documented: bool = True,
    ) -> Callable:
        """Register `view` on `rule` and record it.

        The view receives the path variables, `user` (when `auth`) and `body`
        (a validated `body` model, when given). It returns a response model,
        `(model, headers)`, None (for an empty 204) or a ready Flask Response.
        """

        def decorate(view: Callable) -> Callable:
            doc = inspect.cleandoc(view.__doc__ or view.__name__)
            summary, _, description = doc.partition("\n")
            params = tuple(_RULE_VARIABLE.findall(rule))
            for method in methods:
                self.operations.append(
                    Operation(
                        rule=rule,
                        method=method.upper(),
                        endpoint=f"{self.blueprint.name}.{view.__name__}",
                        summary=summary.strip(),
                        description=description.strip(),
                        body=body,
                        responses=responses,
                        auth=auth,
                        documented=documented,
                        path_params=params,
                    )
                )
            wrapped = _wrap(view, auth=auth, body=body, status=self.operations[-1].success_status)
            self.blueprint.add_url_rule(rule, view.__name__, wrapped, methods=methods)
            return view

        return decorate


def _wrap(view: Callable, *, auth: bool, body: type[BaseModel] | None, status: int) -> Callable:
    @functools.wraps(view)
    def handle(**path_args):
        try:
            if auth:
                path_args["user"] = _require_user()
            if body is not None:
                path_args["body"] = parse_body(body)
            result = view(**path_args)
        except ApiError as exc:
            db.session.rollback()
            return error_reply(exc.status, exc.message, exc.fields, exc.headers)
        except StudioError as exc:
            db.session.rollback()
            return error_reply(exc.status, exc.message, exc.fields)
        return _reply(result, status)

    return handle


def _require_user():
    user = bearer_user(request.headers.get("Authorization", ""))
    if user is None:
        raise ApiError(
            401,
            "Missing or invalid API token. Send 'Authorization: Bearer lst_...'; "
            "create a token on the API tokens page.",
            headers={"WWW-Authenticate": 'Bearer realm="api"'},
        )
    return user


def parse_body(model: type[BaseModel]) -> BaseModel:
    """The request's JSON body validated by `model`; raises ApiError (400)."""
    if request.mimetype != "application/json":
        raise ApiError(400, "Send a JSON body with 'Content-Type: application/json'.")
    try:
        data = load_json(request.get_data(as_text=True) or "null")
    except BadInput as exc:
        raise ApiError(400, str(exc)) from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, f"The body is not valid JSON: {exc}.") from exc
    if not isinstance(data, dict):
        raise ApiError(400, "The body must be a JSON object.")
    try:
        return model.model_validate(data)
    except PydanticError as exc:
        raise ApiError(400, "Invalid request body.", _field_errors(exc, model)) from exc


def _field_errors(exc: PydanticError, model: type[BaseModel]) -> dict[str, str]:
    allowed = ", ".join(model.model_fields)
    fields: dict[str, str] = {}
    for error in exc.errors():
        name = ".".join(str(part) for part in error["loc"]) or "body"
        if error["type"] == "extra_forbidden":
            message = f"Unknown field (allowed: {allowed})."
        elif error["type"] == "missing":
            message = "This field is required."
        else:
            message = error["msg"].removeprefix("Value error, ") + "."
        fields.setdefault(name, message)
    return fields


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


def _reply(result: object, status: int) -> Response:
    if isinstance(result, Response):
        return result
    headers: dict[str, str] = {}
    if isinstance(result, tuple):
        result, headers = result
    if result is None:
        reply = Response(status=204)
    else:
        assert isinstance(result, BaseModel), "an API view returns a response model"
        reply = Response(result.model_dump_json(), status=status, mimetype="application/json")
    reply.headers.update(headers)
    reply.headers["Cache-Control"] = "no-store"
    return reply
