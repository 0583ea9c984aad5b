"""The reconciler against the SRS API test double (tests/srs_api_double.py):
stale live streams ended after the grace period, unknown publishers dropped,
SRS restarts detected, over-long broadcasts cut, an unreachable engine
changing nothing."""

from __future__ import annotations

import json
import time
from datetime import timedelta

import pytest
from sqlalchemy import select

from studio.models import Broadcast, Stream, utcnow
from tests.conftest import load_fixture
from tests.metrics_helpers import value
from tests.srs_api_double import SrsApiTestDouble
from workers import reconcile as reconciler

HOOK = "/hooks/srs?token=test-hook-token"
GRACE = 30.0


@pytest.fixture()
def srs(app, redis, use_engine):
    """The app pointed at an SRS API test double, with known reconcile settings."""
    double = SrsApiTestDouble()
    use_engine(
        "srs", SRS_API_URL=double.url, RECONCILE_GRACE_SECONDS=GRACE, MAX_BROADCAST_SECONDS=3600
    )
    yield double
    double.stop()


def go_live(client, db, make_stream, client_id: str, started_ago: float = 300):
    """A stream live through a real on_publish callback, started `started_ago` seconds ago."""
    stream = make_stream()
    body = {
        **load_fixture("on_publish.json"),
        "stream": stream.public_id,
        "client_id": client_id,
        "param": f"?secret={stream.stream_key}",
    }
    reply = client.post(HOOK, data=json.dumps(body), content_type="application/json")
    assert reply.get_json() == {"code": 0}
    broadcast = db.session.scalar(select(Broadcast).where(Broadcast.client_id == client_id))
    broadcast.started_at = utcnow() - timedelta(seconds=started_ago)
    db.session.commit()
    return stream


def status(db, stream) -> tuple[str, str | None]:
    db.session.expire_all()
    row = db.session.get(Stream, stream.id)
    last = db.session.scalar(
        select(Broadcast).where(Broadcast.stream_id == row.id).order_by(Broadcast.id.desc())
    )
    return row.status, last.end_reason


def test_stream_still_on_the_engine_is_left_alone(client, db, make_stream, srs):
    """A live stream the engine still has stays live, pass after pass."""
    stream = go_live(client, db, make_stream, "cid00001")
    srs.publish(stream.public_id, "cid00001")
    now = time.time()
    for offset in (0, GRACE, 10 * GRACE):
        report = reconciler.reconcile(now=now + offset)
        assert not (report.ended or report.dropped or report.over_duration)
    assert status(db, stream) == ("live", None)


def test_stream_gone_from_the_engine_ends_after_the_grace_period(client, db, make_stream, srs):
    """Live in the database, absent from SRS: untouched at first sight, ended
    (reason "reconciled") once it has been missing for the grace period."""
    stream = go_live(client, db, make_stream, "cid00002")
    now = time.time()
    assert reconciler.reconcile(now=now).ended == []
    assert reconciler.reconcile(now=now + GRACE / 2).ended == []
    assert status(db, stream) == ("live", None)
    assert reconciler.reconcile(now=now + GRACE).ended == [stream.public_id]
    assert status(db, stream) == ("ended", "reconciled")
    assert srs.kicked == []


def test_a_stream_that_comes_back_is_not_ended(client, db, make_stream, srs):
    """Missing for a moment, then listed again: the missing mark is forgotten."""
    stream = go_live(client, db, make_stream, "cid00003")
    now = time.time()
    reconciler.reconcile(now=now)
    srs.publish(stream.public_id, "cid00003")
    reconciler.reconcile(now=now + GRACE / 2)
    srs.publishers.clear()
    assert reconciler.reconcile(now=now + GRACE).ended == []  # missing again only just now
    assert status(db, stream) == ("live", None)


def test_a_just_started_broadcast_gets_the_grace_period(client, db, make_stream, srs):
    """A broadcast younger than the grace period is never ended for being missing
    (WebRTC publishers appear in the API only after DTLS)."""
    stream = go_live(client, db, make_stream, "cid00004", started_ago=1)
    now = time.time()
    reconciler.reconcile(now=now - GRACE)  # seen missing long ago...
    assert reconciler.reconcile(now=now).ended == []  # ...but only 1 s old
    assert status(db, stream) == ("live", None)


def test_unknown_publisher_is_dropped_after_the_grace_period(client, db, srs):
    """A publisher SRS has but the database does not know is kicked, once it
    has been unknown for the grace period."""
    srs.publish("intruder123", "cid0bad1")
    now = time.time()
    assert reconciler.reconcile(now=now).dropped == []
    assert srs.kicked == []
    assert reconciler.reconcile(now=now + GRACE).dropped == ["intruder123"]
    assert srs.kicked == ["cid0bad1"]


def test_srs_restart_is_detected_and_its_streams_ended(client, db, make_stream, srs):
    """A new SRS service id is logged and counted; broadcasts opened under the
    old SRS process are ended at once (their publishers died with it)."""
    stream = go_live(client, db, make_stream, "cid00005")
    srs.publish(stream.public_id, "cid00005")
    before = client.get("/metrics").get_data(as_text=True)
    now = time.time()
    assert reconciler.reconcile(now=now).engine_restarted is False

    srs.service = "newsvc01"  # SRS restarted: new service id, nothing publishing
    srs.publishers.clear()
    report = reconciler.reconcile(now=now + 1)
    assert report.engine_restarted is True
    assert report.ended == [stream.public_id]
    assert status(db, stream) == ("ended", "reconciled")
    after = client.get("/metrics").get_data(as_text=True)
    assert (
        value(after, "studio_srs_restarts_total") - value(before, "studio_srs_restarts_total") == 1
    )
    assert reconciler.reconcile(now=now + 2).engine_restarted is False


def test_over_long_broadcast_is_cut(client, db, make_stream, srs):
    """A broadcast past MAX_BROADCAST_SECONDS is ended ("duration_limit") and
    its publisher kicked, while a shorter one is left alone."""
    long_one = go_live(client, db, make_stream, "cid00006", started_ago=3601)
    short_one = go_live(client, db, make_stream, "cid00007", started_ago=60)
    srs.publish(long_one.public_id, "cid00006")
    srs.publish(short_one.public_id, "cid00007")
    report = reconciler.reconcile(now=time.time())
    assert report.over_duration == [long_one.public_id]
    assert status(db, long_one) == ("ended", "duration_limit")
    assert status(db, short_one) == ("live", None)
    assert srs.kicked == ["cid00006"]


def test_unreachable_engine_changes_nothing(client, db, make_stream, srs):
    """When the SRS API fails, the pass is counted as an engine error and no
    stream is ended, however long it has been."""
    stream = go_live(client, db, make_stream, "cid00008")
    srs.down = True
    now = time.time()
    for offset in (0, GRACE, 100 * GRACE):
        assert reconciler.reconcile(now=now + offset).engine_error
    assert status(db, stream) == ("live", None)


def test_ended_stream_can_go_live_again(client, db, make_stream, srs):
    """After the reconciler ended a stream, the encoder's reconnect is accepted."""
    stream = go_live(client, db, make_stream, "cid00009")
    now = time.time()
    reconciler.reconcile(now=now)
    reconciler.reconcile(now=now + GRACE)
    body = {
        **load_fixture("on_publish.json"),
        "stream": stream.public_id,
        "client_id": "cid00010",
        "param": f"?secret={stream.stream_key}",
    }
    reply = client.post(HOOK, data=json.dumps(body), content_type="application/json")
    assert reply.get_json() == {"code": 0}
    assert status(db, stream) == ("live", None)
