"""Liveness and readiness probes."""

from __future__ import annotations

from studio.redis_client import get_redis


def test_healthz_answers_without_io(client):
    """/healthz is 200 whenever the process serves requests."""
    reply = client.get("/healthz")
    assert reply.status_code == 200
    assert reply.get_json() == {"status": "ok"}


def test_readyz_ok_when_postgres_and_redis_answer(client):
    """/readyz is 200 with nothing failed when both dependencies answer."""
    reply = client.get("/readyz")
    assert reply.status_code == 200
    assert reply.get_json()["failed"] == []


def test_readyz_names_redis_when_it_is_down(app, client):
    """/readyz is 503 and names Redis when Redis does not answer."""
    saved = app.extensions.pop("studio_redis", None)
    saved_url = app.config["REDIS_URL"]
    app.config["REDIS_URL"] = "redis://127.0.0.1:9/0"  # nothing listens on the discard port
    try:
        reply = client.get("/readyz")
    finally:
        app.config["REDIS_URL"] = saved_url
        app.extensions.pop("studio_redis", None)
        if saved is not None:
            app.extensions["studio_redis"] = saved
    assert reply.status_code == 503
    assert reply.get_json()["failed"] == ["redis"]
    with app.app_context():
        assert get_redis().ping()


def test_readyz_names_postgres_when_it_is_down(app, client):
    """/readyz is 503 and names PostgreSQL when the database does not answer."""
    from studio.extensions import db

    with app.app_context():
        engine = db.engine
    original = engine.url
    broken = engine.url.set(port=9)
    from sqlalchemy import create_engine

    with app.app_context():
        engines = db._app_engines[app]
        engines[None] = create_engine(broken, pool_pre_ping=True)
    try:
        reply = client.get("/readyz")
    finally:
        with app.app_context():
            db._app_engines[app][None].dispose()
            db._app_engines[app][None] = engine
    assert reply.status_code == 503
    assert reply.get_json()["failed"] == ["postgres"]
    assert engine.url == original
