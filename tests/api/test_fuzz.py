"""Schemathesis fuzzes every operation in /api/v1/openapi.json against the
app, authenticated with a real API token: no 5xx, and every response (status,
content type, headers, body) matches the document.

The document is read from an app built at import (the factory does no I/O);
requests go to the test app on the test database, through its test client.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.specs.openapi import checks as openapi_checks

from studio import config as studio_config
from studio import create_app

CHECKS = [
    schemathesis.checks.not_a_server_error,
    openapi_checks.status_code_conformance,
    openapi_checks.content_type_conformance,
    openapi_checks.response_headers_conformance,
    openapi_checks.response_schema_conformance,
]

schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", create_app(studio_config.testing()))


@pytest.fixture()
def bearer(db, make_user, make_token):
    """A real token of a creator who owns one stream (so some ids exist)."""
    from studio.streams import service

    user = make_user()
    service.create_stream(db.session, user, "fuzzed")
    db.session.commit()
    return {"Authorization": f"Bearer {make_token(user)}"}


@schema.parametrize()
@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_api_conforms_to_its_document(case, app, bearer):
    """Generated requests (valid and invalid) never get a 5xx, and every reply
    is one the document declares, in the declared shape."""
    case.call_and_validate(session=app.test_client(), headers=bearer, checks=CHECKS)


# --- text no surface accepts -------------------------------------------------
# Schemathesis draws printable UTF-8 strings of modest size and shallow JSON;
# these cases put the inputs that once ended in a 500 where a client can.

OPERATIONS = [result.ok() for result in schema.get_all_operations()]
NUL_TEXT = st.sampled_from(["\x00", "title\x00", "\x00" * 3]) | st.text(min_size=1).map(
    lambda text: text + "\x00"
)
# In a URL, characters the client would read as a fragment or query are left out.
URL_NUL_TEXT = st.text(st.characters(codec="utf-8", exclude_characters="#?/%")).map(
    lambda text: text + "\x00"
)
SURROGATE_TEXT = st.sampled_from(["\ud800", "a\udfffb", "\udbff\udc00\ud800"])
LONG_TEXT = st.integers(min_value=121, max_value=20_000).map(lambda n: "x" * n)


def nested(depth: int, leaf: object = "x") -> object:
    value: object = leaf
    for level in range(depth):
        value = [value] if level % 2 else {"k": value}
    return value


# Schemathesis itself recurses over a body; 5,000 levels are sent in
# tests/test_bad_input.py.
DEEP_JSON = st.integers(min_value=33, max_value=200).map(nested)


@st.composite
def bad_requests(draw, operation):
    """A generated request with NUL, a lone surrogate, an over-long string or
    deep nesting put into its path, query or body; returns (case, refused):
    whether the input guard must refuse it."""
    case = draw(operation.as_strategy())
    places = ["query"]
    if operation.path_parameters:
        places.append("path")
    if operation.body:
        places.append("body")
    place = draw(st.sampled_from(places))
    if place == "body":
        kind = draw(st.sampled_from(["nul", "surrogate", "long", "deep"]))
        value = draw(
            {"nul": NUL_TEXT, "surrogate": SURROGATE_TEXT, "long": LONG_TEXT, "deep": DEEP_JSON}[
                kind
            ]
        )
        field = draw(st.sampled_from(["title", "disabled", "other"]))
        case.body = value if kind == "deep" and draw(st.booleans()) else {field: value}
        return case, kind != "long"
    # A URL carries no lone surrogate (it cannot be encoded); NUL and length it can.
    kind = draw(st.sampled_from(["nul", "long"]))
    value = draw(URL_NUL_TEXT if kind == "nul" else LONG_TEXT)
    if place == "path":
        name = operation.path_parameters[0].name
        case.path_parameters = {**(case.path_parameters or {}), name: value}
    else:
        case.query = {**(case.query or {}), draw(st.sampled_from(["q", "title"])): value}
    return case, kind == "nul"


@pytest.mark.parametrize("operation", OPERATIONS, ids=lambda op: f"{op.method} {op.path}")
@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_bad_text_never_reaches_the_database(operation, data, app, bearer):
    """NUL characters, lone surrogates, over-long strings and deep nesting in
    any place a client controls: never a 5xx, every reply as documented, and
    NUL, surrogates and deep nesting are a 400."""
    case, refused = data.draw(bad_requests(operation))
    reply = case.call_and_validate(session=app.test_client(), headers=bearer, checks=CHECKS)
    if refused:
        assert reply.status_code == 400, (case.path_parameters, case.query, reply.text[:300])
