"""Fixtures shared by the API tests: a user and an API client with their token."""

from __future__ import annotations

import pytest

from tests.api.helpers import Api


@pytest.fixture()
def owner(make_user):
    return make_user()


@pytest.fixture()
def api(client, owner, make_token):
    """The API as `owner` calls it (Bearer token of theirs)."""
    return Api(client, make_token(owner))
