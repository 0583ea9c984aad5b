"""Database connections of the web processes: a liveness ping only for a
connection that sat idle in the pool.

SQLAlchemy's `pool_pre_ping` pings on every checkout: one more PostgreSQL
round trip on every request (one in six of `GET /api/v1/streams/{id}`, one
in eight of a media-server callback: docs/benchmarks.md, "API latency"). A
connection returned to the pool a moment ago is as alive as a ping would
say; one idle for longer than IDLE_BEFORE_PING may have been closed by the
server, a restart or a firewall, so it is pinged first, in autocommit, and
a dead one is replaced before the request sees it (as `pool_pre_ping`
does). Should a connection break mid-request anyway, SQLAlchemy recycles
every connection of the pool opened before the break.

An app whose SQLALCHEMY_ENGINE_OPTIONS name `pool_pre_ping` (the RQ
workers switch it off) keeps exactly that.
"""

from __future__ import annotations

import time

from flask import Flask
from sqlalchemy import event, exc
from sqlalchemy.engine import Engine

IDLE_BEFORE_PING = 1.0  # seconds
_RETURNED = "studio_returned_at"


def init_app(app: Flask) -> None:
    """Ping idle connections on checkout (no I/O here: engines connect lazily)."""
    from studio.extensions import db

    if "pool_pre_ping" in app.config.get("SQLALCHEMY_ENGINE_OPTIONS", {}):
        return
    with app.app_context():
        engines = list(db.engines.values())
    for engine in engines:
        ping_when_idle(engine)


def ping_when_idle(engine: Engine) -> None:
    """Install the checkin/checkout listeners on `engine`'s pool (once)."""
    if not event.contains(engine, "checkout", _ping_if_idle):
        event.listen(engine, "checkin", _returned)
        event.listen(engine, "checkout", _ping_if_idle)


def _returned(dbapi_connection, record) -> None:
    if record is not None:
        record.info[_RETURNED] = time.monotonic()


def _ping_if_idle(dbapi_connection, record, proxy) -> None:
    # A new connection has no return time: it was just opened, no ping.
    returned = record.info.get(_RETURNED)
    if returned is None or time.monotonic() - returned < IDLE_BEFORE_PING:
        return
    try:
        ping(dbapi_connection)
    except Exception as error:
        # The pool discards this connection and checks out another.
        raise exc.DisconnectionError(f"idle connection failed its ping: {error}") from error


def ping(dbapi_connection) -> None:
    """`SELECT 1` in autocommit (no BEGIN, no transaction left open); raises
    the driver's error on a dead connection."""
    autocommit = dbapi_connection.autocommit
    dbapi_connection.autocommit = True
    try:
        with dbapi_connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    finally:
        if not dbapi_connection.closed:
            dbapi_connection.autocommit = autocommit
