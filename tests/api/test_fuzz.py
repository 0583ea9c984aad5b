"""Schemathesis fuzzes every operation in /api/v1/openapi.json against the
app, authenticated with a real API token: no 5xx, and every response (status,
content type, headers, body) matches the document.

The document is read from an app built at import (the factory does no I/O);
requests go to the test app on the test database, through its test client.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
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
