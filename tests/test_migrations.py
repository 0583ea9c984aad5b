"""Migrations: they upgrade, downgrade and upgrade again on an empty
database, and the schema they build is the one the models declare."""

from __future__ import annotations

import secrets

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text

from devtools.services import create_database, ensure_postgres
from studio import config as studio_config
from studio import create_app, secretbox
from studio.extensions import db
from tests.conftest import VAR
from tests.stack import drop_database

HEAD = "0012"


@pytest.fixture()
def empty_app(services):
    """The app on a throwaway database of its own, with no schema in it."""
    postgres = ensure_postgres(VAR, database="postgres")
    name = f"studio_migrations_{secrets.token_hex(4)}"
    create_database(postgres.url, name)
    url = postgres.url.rsplit("/", 1)[0] + "/" + name
    app = create_app(
        studio_config.testing(
            {
                "SQLALCHEMY_DATABASE_URI": studio_config.sqlalchemy_url(url),
                "REDIS_URL": services["redis_url"],
            }
        )
    )
    yield app
    with app.app_context():
        db.engine.dispose()
    drop_database(postgres.url, name)


def _flask_db(app, *args: str) -> None:
    """`flask db ...` through Flask's CLI runner; fails the test on an error."""
    result = app.test_cli_runner().invoke(args=["db", *args])
    assert result.exit_code == 0, result.output + repr(result.exception)


def _state(app) -> tuple[str | None, list[str], str | None]:
    """(alembic revision, tables, definition of the live-streams index)."""
    with app.app_context(), db.engine.connect() as connection:
        revision = MigrationContext.configure(connection).get_current_revision()
        tables = connection.scalars(
            text("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1")
        ).all()
        index = connection.scalar(
            text("SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_streams_live_owner'")
        )
    return revision, [t for t in tables if t != "alembic_version"], index


def test_upgrade_downgrade_upgrade(empty_app):
    """`flask db upgrade` reaches the head with the partial index of live
    streams; `downgrade 0001` removes it, `downgrade base` removes
    every table; `upgrade` builds it all again."""
    _flask_db(empty_app, "upgrade")
    revision, tables, index = _state(empty_app)
    assert revision == HEAD
    expected = {"users", "api_tokens", "streams", "broadcasts", "segments", "chat_messages"}
    assert expected <= set(tables)
    assert index is not None
    # A reconnecting stream keeps its place under the per-user live limit.
    assert "reconnecting" in index and "'live'" in index

    _flask_db(empty_app, "downgrade", "0001")
    assert _state(empty_app)[0] == "0001"
    assert _state(empty_app)[2] is None

    _flask_db(empty_app, "downgrade", "base")
    assert _state(empty_app) == (None, [], None)

    _flask_db(empty_app, "upgrade")
    assert _state(empty_app) == (revision, tables, index)


def test_models_and_migrations_agree(empty_app):
    """On a database upgraded to the head, Alembic's autogenerate finds no
    difference from the models (tables, columns, types, indexes)."""
    _flask_db(empty_app, "upgrade")
    with empty_app.app_context(), db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        diff = compare_metadata(context, db.metadata)
    assert diff == []


def test_webhook_secrets_are_sealed_on_upgrade_and_opened_on_downgrade(empty_app):
    """0012 seals the signing secrets stored in clear before it (the
    delivery worker opens them to sign), and its downgrade gives them back."""
    _flask_db(empty_app, "upgrade", "0011")
    with empty_app.app_context(), db.engine.begin() as connection:
        owner = connection.scalar(
            text(
                "INSERT INTO users (email, display_name, password_hash, created_at)"
                " VALUES ('hook@example.com', 'Hook', 'x', now()) RETURNING id"
            )
        )
        connection.execute(
            text(
                "INSERT INTO webhook_endpoints (owner_id, url, events, secret, enabled, created_at)"
                " VALUES (:owner, 'https://example.com/in', ARRAY['stream.live'], 'whsec_old',"
                " true, now())"
            ),
            {"owner": owner},
        )

    _flask_db(empty_app, "upgrade")
    box = secretbox.from_config(empty_app.config)
    with empty_app.app_context(), db.engine.connect() as connection:
        sealed = connection.scalar(text("SELECT secret_encrypted FROM webhook_endpoints"))
    assert b"whsec_old" not in bytes(sealed)
    assert box.open(sealed) == "whsec_old"

    _flask_db(empty_app, "downgrade", "0011")
    with empty_app.app_context(), db.engine.connect() as connection:
        assert connection.scalar(text("SELECT secret FROM webhook_endpoints")) == "whsec_old"
