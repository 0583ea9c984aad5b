"""One rule for text that enters the studio, applied before any view runs.

PostgreSQL cannot store a NUL character, a lone UTF-16 surrogate cannot be
encoded at all, and deeply nested JSON exhausts Python's stack: none of them
is ever meaningful input. `guard_request` refuses them in the path, the
query, a form and a JSON body of every request, with a 400 in the format of
the surface asked (JSON for the API and the media-server hooks, the error
page for pages). `load_json` is the JSON loader with a depth limit that the
guard, the API and the websocket ingest share.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator

from flask import Flask, Response, abort, has_request_context, jsonify, request
from flask.json.provider import DefaultJSONProvider

# Studio bodies are flat objects; a few levels spare for any future shape.
MAX_JSON_DEPTH = 32
_SURROGATE = re.compile("[\ud800-\udfff]")
# Outside strings, only brackets change the depth; strings may hold brackets.
# An unterminated string runs to the end, so the scan stays linear.
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*(?:"|\\?\Z)', re.DOTALL)
_BRACKETS = re.compile(r"[\[\]{}]")
# The body as the guard parsed it, for the view's first `request.get_json()`.
_PARSED = "studio.parsed_json"


class BadInput(ValueError):
    """Text no surface accepts; the message says what and where."""


def check_text(value: str, where: str) -> None:
    """Raise BadInput if `value` holds a NUL character or a lone surrogate."""
    if "\x00" in value:
        raise BadInput(f"{where} contains a NUL character, which is not allowed.")
    if _SURROGATE.search(value):
        raise BadInput(f"{where} contains an invalid character (a lone UTF-16 surrogate).")


def load_json(data: str | bytes, max_depth: int = MAX_JSON_DEPTH) -> object:
    """Parse JSON text; raises BadInput for nesting deeper than `max_depth`,
    NUL characters or lone surrogates in any key or string, and ValueError
    (json.JSONDecodeError, UnicodeDecodeError) for text that is not JSON."""
    text = data.decode("utf-8") if isinstance(data, bytes | bytearray) else data
    check_text(text, "The JSON text")
    _check_depth(text, max_depth)
    value = json.loads(text)
    # Only a \u escape puts a NUL or a surrogate into a parsed string that
    # the text itself (checked above) did not hold: without one, the walk
    # over every key and string (most bodies: engine callbacks) is skipped.
    if "\\u" in text:
        for where, string in _strings(value):
            check_text(string, where)
    return value


def _check_depth(text: str, max_depth: int) -> None:
    # Checked on the text, before parsing: the parser itself recurses.
    if text.count("{") + text.count("[") <= max_depth:
        return  # fewer opening brackets than the limit: no nesting can pass it
    depth = 0
    for bracket in _BRACKETS.findall(_JSON_STRING.sub("", text)):
        depth += 1 if bracket in "[{" else -1
        if depth > max_depth:
            raise BadInput(f"The JSON text is nested deeper than {max_depth} levels.")


def _strings(value: object) -> Iterator[tuple[str, str]]:
    """Every key and string in a parsed JSON value, with where it is."""
    pending: list[tuple[str, object]] = [("The JSON body", value)]
    while pending:
        where, item = pending.pop()
        if isinstance(item, str):
            yield where, item
        elif isinstance(item, dict):
            for key, child in item.items():
                yield "A JSON key", key
                pending.append((f"JSON field '{_printable(key)}'", child))
        elif isinstance(item, list):
            pending.extend((where, child) for child in item)


def _printable(key: str) -> str:
    return _SURROGATE.sub("?", key.replace("\x00", "?"))[:40]


def _pairs(where: str, items: Iterable[tuple[str, str]]) -> Iterator[tuple[str, str]]:
    for key, value in items:
        yield f"{where} name", key
        yield f"{where} '{_printable(key)}'", value


def _check_json_body() -> None:
    data = request.get_data(cache=True)
    if not request.is_json or not data:
        return
    try:
        value = load_json(data)
    except BadInput:
        raise
    except ValueError:
        return  # not JSON at all: the view says so in its own words
    # The view's `request.get_json()` takes this instead of parsing again.
    request.environ[_PARSED] = (data, value)


def guard_request() -> Response | None:
    """Refuse a request whose path, query, form or JSON body holds text no
    surface accepts (before_request: runs before every view)."""
    try:
        check_text(request.path, "The URL path")
        for where, value in _pairs("Query parameter", request.args.items(multi=True)):
            check_text(value, where)
        if request.mimetype in ("application/x-www-form-urlencoded", "multipart/form-data"):
            for where, value in _pairs("Form field", request.form.items(multi=True)):
                check_text(value, where)
        _check_json_body()
    except BadInput as exc:
        return refusal(str(exc))
    return None


def refusal(message: str, status: int = 400) -> Response:
    """A 400 in the asked surface's format: hooks reply the way SRS and
    nginx-rtmp read a refusal (non-2xx, non-zero `code`), the API its JSON
    error, pages the error page."""
    if request.path.startswith("/hooks/"):
        reply = jsonify(code=status, error=message)
    elif request.path.startswith("/api/"):
        reply = jsonify(error=message, fields={})
    else:
        abort(status, message)
    reply.status_code = status
    return reply


class GuardedJSONProvider(DefaultJSONProvider):
    """`request.get_json()` everywhere uses the depth-limited loader."""

    def loads(self, s: str | bytes, **kwargs) -> object:
        if has_request_context():
            parsed = request.environ.pop(_PARSED, None)
            if parsed is not None and parsed[0] is s:
                return parsed[1]  # the request's body, checked and parsed by the guard
        return load_json(s)


def init_app(app: Flask) -> None:
    """Run the guard before every other before-request function (CSRF,
    limits, blueprint checks), so nothing reads bad text first."""
    app.json_provider_class = GuardedJSONProvider
    app.json = GuardedJSONProvider(app)
    app.before_request_funcs.setdefault(None, []).insert(0, guard_request)
