"""Pooled database connections: a connection that sat idle is pinged before
use, and a dead one is replaced before a request sees it; one just returned
is used as it is (no round trip)."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, text

from studio import database
from tests.polling import wait_until


def _engine(app):
    engine = create_engine(app.config["SQLALCHEMY_DATABASE_URI"], pool_size=1, max_overflow=0)
    database.ping_when_idle(engine)
    return engine


def _pings(monkeypatch) -> list[int]:
    pings: list[int] = []
    original = database.ping

    def counted(dbapi_connection):
        pings.append(1)
        return original(dbapi_connection)

    monkeypatch.setattr(database, "ping", counted)
    return pings


def _backend_alive(engine, pid: int) -> bool:
    # A connection of its own per look: a transaction keeps its first view of pg_stat_activity.
    with engine.connect() as connection:
        found = connection.scalar(
            text("SELECT count(*) FROM pg_stat_activity WHERE pid = :p"), {"p": pid}
        )
    return bool(found)


def test_a_dead_idle_connection_is_replaced_before_use(app, db, monkeypatch):
    """A pooled connection the server ended while it sat idle is found dead by
    the ping and replaced: the next query succeeds on a new backend."""
    engine = _engine(app)
    pings = _pings(monkeypatch)
    try:
        with engine.connect() as connection:
            first = connection.scalar(text("SELECT pg_backend_pid()"))
        db.session.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": first})
        db.session.commit()
        wait_until(lambda: not _backend_alive(db.engine, first), what="the backend to exit")
        # The app's own engine pings too when its connection idled over a
        # second between the looks above (a busy machine): count from here.
        pings.clear()
        monkeypatch.setattr(database, "IDLE_BEFORE_PING", 0.0)
        with engine.connect() as connection:
            second = connection.scalar(text("SELECT pg_backend_pid()"))
        assert second != first
        assert pings == [1]
    finally:
        engine.dispose()


def test_a_connection_used_a_moment_ago_is_not_pinged(app, db, monkeypatch):
    """Back-to-back checkouts cost no ping; no transaction is left open by one."""
    engine = _engine(app)
    pings = _pings(monkeypatch)
    monkeypatch.setattr(database, "IDLE_BEFORE_PING", 3600.0)
    try:
        for _ in range(3):
            with engine.connect() as connection:
                assert connection.scalar(text("SELECT 1")) == 1
        assert pings == []
        monkeypatch.setattr(database, "IDLE_BEFORE_PING", 0.0)
        with engine.connect() as connection:
            status = connection.connection.dbapi_connection.info.transaction_status
            assert status == 0  # TRANSACTION_STATUS_IDLE: the ping opened none
        assert pings == [1]
    finally:
        engine.dispose()


def test_a_read_only_unit_of_work_runs_in_autocommit_and_refuses_writes(app, db, make_user):
    """`read_only`: queries run without a transaction (nothing to roll back),
    a write is refused before it reaches the database, and the next unit of
    work of the session is an ordinary transaction again."""
    from sqlalchemy.orm import Session

    from studio.models import User
    from studio.transactions import read_only

    user = make_user()
    with Session(db.engine) as session:
        read_only(session)
        assert session.get(User, user.id).email == user.email
        dbapi = session.connection().connection.dbapi_connection
        assert dbapi.autocommit and dbapi.info.transaction_status == 0  # idle: no BEGIN
        session.get(User, user.id).display_name = "Changed"
        with pytest.raises(RuntimeError, match="read-only"):
            session.flush()
        session.rollback()
        session.get(User, user.id).display_name = "Changed"
        assert not session.connection().connection.dbapi_connection.autocommit
        session.commit()
    db.session.expire_all()
    assert db.session.get(User, user.id).display_name == "Changed"


@pytest.fixture()
def one_connection(app, monkeypatch):
    """An engine of one connection, and the isolation levels it is set to
    (each is a `SET default_transaction_isolation` round trip)."""
    engine = create_engine(app.config["SQLALCHEMY_DATABASE_URI"], pool_size=1, max_overflow=0)
    changes = []
    original = engine.dialect.set_isolation_level
    monkeypatch.setattr(
        engine.dialect,
        "set_isolation_level",
        lambda conn, level: (changes.append(level), original(conn, level))[1],
    )
    yield engine, changes
    engine.dispose()


def assert_next_user_gets_a_transaction(engine) -> None:
    """The pooled connection is out of autocommit: a statement opens a transaction."""
    with engine.connect() as connection:
        dbapi = connection.connection.dbapi_connection
        assert not dbapi.autocommit
        connection.execute(text("SELECT 1"))
        assert dbapi.info.transaction_status != 0  # in a transaction
        connection.rollback()


def test_a_read_only_unit_of_work_changes_no_session_setting(db, make_user, one_connection):
    """Entering and leaving `read_only` never changes the connection's
    isolation level (the pool would set it back on every return), and the
    connection goes back to the pool out of autocommit: its next user gets a
    transaction."""
    from sqlalchemy.orm import Session

    from studio.models import User
    from studio.transactions import end_read_only, read_only

    user = make_user()
    engine, changes = one_connection
    for _ in range(3):
        with Session(engine) as session:
            read_only(session)
            assert session.get(User, user.id).email == user.email
            end_read_only(session)
    assert_next_user_gets_a_transaction(engine)
    assert changes == []


def test_a_read_only_connection_runs_in_autocommit_and_returns_to_transactions(
    db, make_user, one_connection
):
    """`read_only_connection`: its statements run without a transaction (no
    BEGIN, nothing to roll back) and without an isolation-level SET; the
    connection goes back to the pool out of autocommit, so its next user
    gets a transaction."""
    from studio.transactions import read_only_connection

    user = make_user()
    engine, changes = one_connection
    with read_only_connection(engine) as connection:
        email = connection.execute(
            text("SELECT email FROM users WHERE id = :id"), {"id": user.id}
        ).scalar()
        dbapi = connection.connection.dbapi_connection
        assert email == user.email
        assert dbapi.autocommit and dbapi.info.transaction_status == 0  # idle: no BEGIN
    assert_next_user_gets_a_transaction(engine)
    assert changes == []


@pytest.mark.parametrize(("setting", "prepared"), [("1", True), ("0", False)])
def test_a_statement_run_again_and_again_is_prepared_unless_turned_off(app, db, setting, prepared):
    """psycopg prepares a statement once it has run 5 times on a connection
    (PostgreSQL plans it once); STUDIO_DB_PREPARED_STATEMENTS=0 turns that
    off, for a PgBouncer that cannot carry prepared statements."""
    from studio import config

    options = config.flask_config(
        config.load({"STUDIO_SECRET_KEY": "x", "STUDIO_DB_PREPARED_STATEMENTS": setting})
    )["SQLALCHEMY_ENGINE_OPTIONS"]
    engine = create_engine(app.config["SQLALCHEMY_DATABASE_URI"], pool_size=1, **options)
    try:
        with engine.connect() as connection:
            for _ in range(6):
                connection.execute(text("SELECT count(*) FROM users WHERE id > :n"), {"n": 0})
            held = connection.scalar(
                text("SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE :s"),
                {"s": "%FROM users WHERE id > %"},
            )
        assert (held == 1) is prepared
    finally:
        engine.dispose()
