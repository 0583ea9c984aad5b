"""The floor of a publish/unpublish callback (`bench/callback_floor.py`).

A bare WSGI callable for gunicorn: no Flask, no SQLAlchemy, no domain code.
It sends the statements the studio sends for the benchmark's callbacks
(read from the studio, in `CALLBACK_FLOOR_STATEMENTS`: their SQL and
parameters as `bench/callback_floor.py` recorded them from one publish and
one unpublish of the real app) in the same transactions, with psycopg 3 (one
connection per thread, statements prepared by the driver as in the studio),
then the same Redis writes in one MULTI/EXEC (the status message; on
unpublish the files' node read and an RQ-shaped job). It decides nothing:
no key check, no events, metrics, logs or RQ objects.
What it costs is what any implementation of these round trips in Python
would cost at least, on this machine.

Only for the benchmark: it trusts its input (the benchmark's own requests).
"""

from __future__ import annotations

import functools
import hmac
import json
import os
import threading
import uuid
from datetime import UTC, datetime

import psycopg
import redis
from psycopg.rows import dict_row


def create(statements: dict[str, list[dict]], dsn: str, token: str, redis_url: str):
    """The floor's WSGI callable: `statements` by action (`record_statements`),
    PostgreSQL at `dsn` (a libpq URL), the hook token, Redis at `redis_url`."""
    settings = {
        "statements": statements,
        "dsn": dsn,
        "token": token.encode(),
        "redis": redis.Redis.from_url(redis_url),
        "connections": threading.local(),  # one per gunicorn thread
    }
    return functools.partial(_callback, settings)


def from_environ():
    """`create` from the environment gunicorn gives the benchmark's floor:
    CALLBACK_FLOOR_STATEMENTS (a JSON file), DATABASE_URL, STUDIO_HOOK_TOKEN,
    REDIS_URL."""
    with open(os.environ["CALLBACK_FLOOR_STATEMENTS"]) as file:
        statements = json.load(file)
    dsn = os.environ["DATABASE_URL"].replace("postgresql+psycopg://", "postgresql://")
    return create(statements, dsn, os.environ["STUDIO_HOOK_TOKEN"], os.environ["REDIS_URL"])


def record_statements(app, hook_path: str, body: dict) -> dict[str, list[dict]]:
    """The statements the studio `app` sends for one on_publish and one
    on_unpublish of `body` (an SRS on_publish; after a warm-up pair with
    another client id), by action: the SQL as psycopg takes it and the
    parameters (a timestamp as "datetime:...")."""
    from sqlalchemy import event

    from studio.extensions import db

    with app.app_context():
        engine = db.engine
    client = app.test_client()
    recorded: dict[str, list[dict]] = {}
    action = ""

    def before(conn, cursor, statement, parameters, context, executemany):
        plain = {key: _plain(value) for key, value in parameters.items()}
        recorded.setdefault(action, []).append({"sql": statement, "parameters": plain})

    for run in ("warm-up", "recorded"):
        if run == "recorded":
            event.listen(engine, "before_cursor_execute", before)
        for action in ("on_publish", "on_unpublish"):
            sent = body | {"action": action, "client_id": f"{body['client_id']}-{run}"}
            reply = client.post(hook_path, json=sent)
            assert reply.status_code == 200 and reply.json["code"] == 0, reply.text
    event.remove(engine, "before_cursor_execute", before)
    return recorded


def _plain(value):
    return f"datetime:{value.isoformat()}" if isinstance(value, datetime) else value


def _connection(settings: dict) -> psycopg.Connection:
    held = settings["connections"]
    if getattr(held, "connection", None) is None:
        held.connection = psycopg.connect(settings["dsn"], row_factory=dict_row)
    return held.connection


def _values(template: dict, known: dict) -> dict:
    """The recorded parameters with this callback's values: by name when
    known, the time now for a timestamp, else the recorded constant."""
    now = datetime.now(UTC)
    values = {}
    for name, value in template.items():
        if name in known:
            values[name] = known[name]
        elif isinstance(value, str) and value.startswith("datetime:"):
            values[name] = now
        else:
            values[name] = value
    return values


def _reply(start_response, status: str, body: dict) -> list[bytes]:
    data = json.dumps(body).encode()
    headers = [("Content-Type", "application/json"), ("Content-Length", str(len(data)))]
    start_response(status, headers)
    return [data]


def _callback(settings: dict, environ, start_response):
    query = dict(part.split("=", 1) for part in environ["QUERY_STRING"].split("&") if "=" in part)
    if not hmac.compare_digest(query.get("token", "").encode(), settings["token"]):
        return _reply(start_response, "403 Forbidden", {"code": 403})
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = json.loads(environ["wsgi.input"].read(length))
    action = body["action"]
    statements = settings["statements"].get(action)
    if statements is None:
        return _reply(start_response, "200 OK", {"code": 0})
    known = {
        "stream_name": body["stream"],
        "client_id": body["client_id"],
        "server_id": body["server_id"],
        "service_id": body["service_id"],
        "new_client_id": body["client_id"],
        "new_server_id": body["server_id"],
        "new_service_id": body["service_id"],
        "new_ip": body["ip"],
    }
    connection = _connection(settings)
    with connection.transaction():
        first, *rest = statements
        stream = connection.execute(first["sql"], _values(first["parameters"], known)).fetchone()
        for key in ("stream_id", "row_0", "new_stream_id"):
            known[key] = stream["id"]
        known["owner_id"] = stream["owner_id"]
        known["row_1"] = stream.get("broadcast_id")
        for statement in rest:
            cursor = connection.execute(statement["sql"], _values(statement["parameters"], known))
            row = cursor.fetchone() if cursor.description else None
    status = "live" if action == "on_publish" else "ended"
    message = {"type": "status", "stream": body["stream"], "status": status}
    pipeline = settings["redis"].pipeline(transaction=True)
    if action == "on_publish":
        message["broadcast"] = {"id": row["id"], "started_at": row["started_at"].isoformat()}
        pipeline.publish(f"floor:stream:{body['stream']}", json.dumps(message))
    else:
        settings["redis"].get(f"floor:node:{body['stream']}")
        job = f"floor:job:{uuid.uuid4()}"
        message["broadcast"] = {"id": known["row_1"]}
        pipeline.publish(f"floor:stream:{body['stream']}", json.dumps(message))
        pipeline.sadd("floor:queues", "floor:queue")
        pipeline.hset(job, "status", "queued")
        pipeline.hset(job, mapping={f"field{i}": "x" * 24 for i in range(19)})
        pipeline.rpush("floor:queue", job)
    pipeline.execute()
    return _reply(start_response, "200 OK", {"code": 0})


def app(environ, start_response):
    """gunicorn's entry (`callback_floor_app:app`): the floor, built on the
    first request from the environment."""
    if not _built:
        _built.append(from_environ())  # two threads may both build: harmless
    return _built[0](environ, start_response)


_built: list = []
