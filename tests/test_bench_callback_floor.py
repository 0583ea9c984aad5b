"""The callback floor of `make bench` (bench/callback_floor_app.py) sends the
studio's own statements for a publish and an unpublish, so its figures stay
a floor of the same work as the studio changes."""

from __future__ import annotations

import json
import runpy

from sqlalchemy import select
from werkzeug.test import Client

from devtools.process import ROOT
from studio.models import Broadcast, Stream
from tests.conftest import load_fixture

floor = runpy.run_path(str(ROOT / "bench" / "callback_floor_app.py"))
HOOK = "/hooks/srs?token=test-hook-token"


def test_the_floor_writes_what_the_studio_writes_for_a_publish_and_an_unpublish(
    app, db, redis, make_stream
):
    """Recorded from the studio, the floor opens a broadcast on publish and
    ends it on unpublish, as the studio would: the same rows."""
    stream = make_stream()
    body = load_fixture("on_publish.json") | {
        "stream": stream.public_id,
        "param": f"?secret={stream.stream_key}",
        "client_id": "recorded",
    }
    recorded = floor["record_statements"](app, HOOK, body)
    assert [len(recorded["on_publish"]), len(recorded["on_unpublish"])] == [3, 2]
    dsn = db.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    wsgi = floor["create"](recorded, dsn, app.config["HOOK_TOKEN"], app.config["REDIS_URL"])
    client = Client(wsgi)
    sent = body | {"client_id": "floor-1"}

    reply = client.post(HOOK, data=json.dumps(sent | {"action": "on_publish"}))
    assert (reply.status_code, reply.json) == (200, {"code": 0})
    db.session.expire_all()
    assert db.session.get(Stream, stream.id).status == "live"
    opened = db.session.scalars(select(Broadcast).where(Broadcast.client_id == "floor-1")).one()
    assert opened.ended_at is None

    reply = client.post(HOOK, data=json.dumps(sent | {"action": "on_unpublish"}))
    assert (reply.status_code, reply.json) == (200, {"code": 0})
    db.session.expire_all()
    assert db.session.get(Stream, stream.id).status == "ended"
    assert db.session.get(Broadcast, opened.id).end_reason == "unpublish"


def test_the_floor_refuses_a_wrong_hook_token(app, db, redis):
    """Like the studio, the floor answers nothing without the hook token."""
    wsgi = floor["create"]({}, "postgresql:///unused", "right", app.config["REDIS_URL"])
    reply = Client(wsgi).post("/hooks/srs?token=wrong", data="{}")
    assert reply.status_code == 403
