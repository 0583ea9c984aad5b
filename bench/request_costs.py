"""What one request costs in round trips: PostgreSQL and Redis (`make bench`).

Counted in-process, through the whole WSGI app (Flask's test client: the
same middleware, views and extensions gunicorn runs, minus the socket), by
listeners on the app's own clients:

- PostgreSQL: every statement SQLAlchemy sends, every liveness ping
  (`SELECT 1` in autocommit, outside SQLAlchemy's statement events: the
  pool's `pool_pre_ping` on every checkout, or `studio.database`'s ping of
  a connection that sat idle), the
  `BEGIN` psycopg sends before the first statement of a transaction (none
  in autocommit), each
  `COMMIT`, and each `ROLLBACK` (a session closed at the end of a request
  rolls back what it read). A commit or rollback with no transaction open
  sends nothing and is not counted.
- isolation SETs: a connection put in AUTOCOMMIT through SQLAlchemy's
  isolation level (`set_isolation_level`). With psycopg2, the driver
  before psycopg 3, each was a `SET default_transaction_isolation` round
  trip (seen with strace); psycopg 3 sends nothing for it, and the studio
  switches `autocommit` on the connection itself (`studio.transactions`),
  so this stays 0. Counted in PostgreSQL round trips, as before.
- Redis: each command or pipeline written to a connection (one round trip
  each: `send_packed_command`).

Counts are averaged over `repeat` requests after a warm-up, so a
connection opened once per process does not count; so is the process's CPU
time (`time.process_time`: less disturbed by the machine's other work than
wall time; the app and the test client, not PostgreSQL, Redis or gunicorn).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass

import redis.connection
from psycopg.pq import TransactionStatus
from sqlalchemy import event

COLUMNS = (
    "statements",
    "pings",
    "isolation",
    "begins",
    "commits",
    "rollbacks",
    "pg round trips",
    "redis",
)


@dataclass
class Cost:
    """Average counts per request of one endpoint, and its in-process time."""

    name: str
    counts: dict[str, float]
    milliseconds: float


@contextmanager
def counting(engine):
    """Count round trips to PostgreSQL (through `engine`) and Redis meanwhile."""
    counts: Counter = Counter()

    def idle(dbapi_connection) -> bool:
        return dbapi_connection.info.transaction_status == TransactionStatus.IDLE

    def before_execute(conn, cursor, statement, parameters, context, executemany):
        counts["statements"] += 1
        if idle(cursor.connection) and not cursor.connection.autocommit:
            counts["begins"] += 1

    def on_commit(conn):
        if not idle(conn.connection.dbapi_connection):
            counts["commits"] += 1

    def on_rollback(conn):
        if not idle(conn.connection.dbapi_connection):
            counts["rollbacks"] += 1

    def on_reset(dbapi_connection, record, state):
        if not idle(dbapi_connection):
            counts["rollbacks"] += 1

    dialect = engine.dialect
    original_ping = dialect.do_ping
    original_isolation = dialect.set_isolation_level

    def set_isolation_level(dbapi_connection, level):
        if level == "AUTOCOMMIT":
            counts["isolation"] += 1
        return original_isolation(dbapi_connection, level)

    def ping(dbapi_connection):
        counts["pings"] += 1  # in autocommit: no BEGIN
        return original_ping(dbapi_connection)

    from studio import database  # the web processes' ping of idle connections

    original_idle_ping = database.ping

    def idle_ping(dbapi_connection):
        counts["pings"] += 1
        return original_idle_ping(dbapi_connection)

    original_send = redis.connection.AbstractConnection.send_packed_command

    def send(self, command, check_health=True):
        counts["redis"] += 1
        return original_send(self, command, check_health)

    listeners = [
        (engine, "before_cursor_execute", before_execute),
        (engine, "commit", on_commit),
        (engine, "rollback", on_rollback),
        (engine.pool, "reset", on_reset),
    ]
    for target, name, listener in listeners:
        event.listen(target, name, listener)
    dialect.do_ping = ping
    dialect.set_isolation_level = set_isolation_level
    database.ping = idle_ping
    redis.connection.AbstractConnection.send_packed_command = send
    try:
        yield counts
    finally:
        redis.connection.AbstractConnection.send_packed_command = original_send
        dialect.do_ping = original_ping
        dialect.set_isolation_level = original_isolation
        database.ping = original_idle_ping
        for target, name, listener in listeners:
            event.remove(target, name, listener)


def measure(
    app, endpoints: list[tuple[str, Callable[[object, int], int]]], repeat: int = 200
) -> list[Cost]:
    """Per-request costs of each endpoint; `call(client, i)` makes the i-th
    call (or calls) through the test client and returns how many requests it made."""
    from studio.extensions import db

    client = app.test_client()
    with app.app_context():
        engine = db.engine
    costs = []
    for name, call in endpoints:
        for i in range(5):  # warm-up: pools, caches, first-use imports
            call(client, i)
        requests = 0
        with counting(engine) as counts:
            started = time.process_time()
            for i in range(5, 5 + repeat):
                requests += call(client, i)
            elapsed = time.process_time() - started
        counts["pg round trips"] = sum(
            counts[key]
            for key in ("statements", "pings", "isolation", "begins", "commits", "rollbacks")
        )
        average = {key: counts[key] / requests for key in COLUMNS}
        costs.append(Cost(name, average, elapsed / requests * 1000))
    return costs


def table(costs: list[Cost]) -> str:
    """Markdown table, one row per endpoint."""
    lines = [
        "| endpoint | SQL statements | pings | isolation SETs | BEGIN | COMMIT | ROLLBACK "
        "| PostgreSQL round trips | Redis round trips | app CPU ms |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for cost in costs:
        cells = " | ".join(_number(cost.counts[key]) for key in COLUMNS)
        lines.append(f"| {cost.name} | {cells} | {cost.milliseconds:.2f} |")
    return "\n".join(lines)


def _number(value: float) -> str:
    return f"{value:.0f}" if abs(value - round(value)) < 0.005 else f"{value:.2f}"
