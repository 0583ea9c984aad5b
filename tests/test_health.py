"""Liveness and readiness probes."""

from __future__ import annotations

from studio import config as studio_config
from studio import create_app

NOTHING_LISTENS = "127.0.0.1:9"  # the discard port: connections are refused at once
DOWN_DATABASE = f"postgresql+psycopg://postgres@{NOTHING_LISTENS}/studio"
DOWN_REDIS = f"redis://{NOTHING_LISTENS}/0"


def app_with(app, **overrides):
    """An app like the test app, with some dependency pointed elsewhere."""
    config = studio_config.testing(
        {
            "SQLALCHEMY_DATABASE_URI": app.config["SQLALCHEMY_DATABASE_URI"],
            "REDIS_URL": app.config["REDIS_URL"],
            **overrides,
        }
    )
    return create_app(config)


def test_healthz_answers_without_io(app):
    """/healthz is 200 even when neither PostgreSQL nor Redis answers."""
    broken = app_with(app, SQLALCHEMY_DATABASE_URI=DOWN_DATABASE, REDIS_URL=DOWN_REDIS)
    reply = broken.test_client().get("/healthz")
    assert reply.status_code == 200
    assert reply.get_json() == {"status": "ok"}


def test_readyz_ok_when_postgres_and_redis_answer(client):
    """/readyz is 200 with nothing failed when both dependencies answer."""
    reply = client.get("/readyz")
    assert reply.status_code == 200
    assert reply.get_json() == {"status": "ok", "failed": []}


def test_readyz_names_redis_when_it_is_down(app):
    """/readyz is 503 and names Redis when Redis does not answer."""
    broken = app_with(app, REDIS_URL=DOWN_REDIS)
    reply = broken.test_client().get("/readyz")
    assert reply.status_code == 503
    assert reply.get_json() == {"status": "unavailable", "failed": ["redis"]}


def test_readyz_names_postgres_when_it_is_down(app):
    """/readyz is 503 and names PostgreSQL when the database does not answer."""
    broken = app_with(app, SQLALCHEMY_DATABASE_URI=DOWN_DATABASE)
    reply = broken.test_client().get("/readyz")
    assert reply.status_code == 503
    assert reply.get_json() == {"status": "unavailable", "failed": ["postgres"]}


def test_readyz_names_both(app):
    """Both down: both named."""
    broken = app_with(app, SQLALCHEMY_DATABASE_URI=DOWN_DATABASE, REDIS_URL=DOWN_REDIS)
    reply = broken.test_client().get("/readyz")
    assert reply.status_code == 503
    assert reply.get_json()["failed"] == ["postgres", "redis"]
