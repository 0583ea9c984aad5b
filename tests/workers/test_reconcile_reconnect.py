"""The reconciler and the reconnect window (SRS callbacks recorded from a real
SRS 5, its API played by tests/srs_api_double.py): a reconnecting broadcast
is not "missing", its deadline ends it, also while the engine is down."""

from __future__ import annotations

import json
import time
from datetime import timedelta

import pytest

from studio.models import utcnow
from tests.conftest import load_fixture
from tests.metrics_helpers import value
from tests.workers.test_reconcile import GRACE, HOOK, srs, status  # noqa: F401 (fixture)
from workers import reconcile as reconciler

WINDOW = 120
TIMEOUT = "reconnect_timeout"


def callback(client, name: str, stream, client_id: str) -> dict:
    body = {
        **load_fixture(name),
        "stream": stream.public_id,
        "client_id": client_id,
        "param": f"?secret={stream.stream_key}",
    }
    return client.post(HOOK, data=json.dumps(body), content_type="application/json").get_json()


@pytest.fixture()
def reconnecting(client, db, make_stream, srs):  # noqa: F811 (the fixture above)
    """A stream whose publisher left through a real on_unpublish, window 120 s."""
    stream = make_stream(reconnect_window=WINDOW)
    assert callback(client, "on_publish.json", stream, "cid10001") == {"code": 0}
    assert callback(client, "on_unpublish.json", stream, "cid10001") == {"code": 0}
    assert status(db, stream) == ("reconnecting", None)
    return stream


def test_a_reconnecting_broadcast_is_not_ended_as_missing(db, reconnecting, srs):  # noqa: F811
    """Absent from the engine for longer than the grace period, within its
    window: still waiting for its publisher."""
    now = time.time()
    for offset in (0, GRACE, 2 * GRACE):
        report = reconciler.reconcile(now=now + offset)
        assert report.ended == [] and report.reconnect_timeouts == []
    assert status(db, reconnecting) == ("reconnecting", None)


def test_the_deadline_ends_the_broadcast(client, db, reconnecting, srs):  # noqa: F811
    """Once the deadline has passed the pass ends it (reason
    reconnect_timeout), counted among the reconciler's actions."""
    metric = ("studio_reconcile_actions_total",)
    before = value(client.get("/metrics").get_data(as_text=True), *metric, action=TIMEOUT)
    deadline = (utcnow() + timedelta(seconds=WINDOW)).timestamp()
    assert reconciler.reconcile(now=deadline - 5).reconnect_timeouts == []
    assert reconciler.reconcile(now=deadline + 1).reconnect_timeouts == [reconnecting.public_id]
    assert status(db, reconnecting) == ("ended", "reconnect_timeout")
    after = value(client.get("/metrics").get_data(as_text=True), *metric, action=TIMEOUT)
    assert after == before + 1


def test_the_deadline_passes_while_the_engine_is_down(db, reconnecting, srs):  # noqa: F811
    """An unreachable engine skips the comparison, not the deadlines."""
    srs.stop()
    deadline = (utcnow() + timedelta(seconds=WINDOW)).timestamp()
    report = reconciler.reconcile(now=deadline + 1)
    assert report.engine_error
    assert report.reconnect_timeouts == [reconnecting.public_id]
    assert status(db, reconnecting) == ("ended", "reconnect_timeout")


def test_a_publisher_back_through_the_callbacks_is_live_again(
    client,
    db,
    reconnecting,
    srs,  # noqa: F811
):
    """A new SRS client of the stream within the window continues the
    broadcast, and the engine listing it keeps it live."""
    assert callback(client, "on_publish.json", reconnecting, "cid10002") == {"code": 0}
    srs.publish(reconnecting.public_id, "cid10002")
    report = reconciler.reconcile(now=time.time() + 10 * WINDOW)
    assert report.reconnect_timeouts == [] and report.ended == []
    assert status(db, reconnecting) == ("live", None)
