"""Fixtures shared by the deploy tests."""

from __future__ import annotations

import pytest

from tests.deploy.gunicorn_server import WORKERS, start_gunicorn, stop_gunicorn


@pytest.fixture()
def server(app, services, db):
    """The production gunicorn.conf.py with WORKERS workers, on the test
    database and Redis, stopped after the test."""
    server = start_gunicorn(services, app.config["HOOK_TOKEN"], workers=WORKERS)
    yield server
    stop_gunicorn(server)
