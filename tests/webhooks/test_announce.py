"""Which domain event becomes which webhook, and how a new one hooks in."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import pytest

from studio.core import events
from studio.webhooks import announce, service
from tests.webhooks.conftest import run_worker
from workers import jobs


def test_every_mapped_event_is_a_subscribable_webhook_event():
    """Every domain event mapped to a webhook is one a creator can choose."""
    mapped = {name for name, _ in announce.WEBHOOK_EVENTS.values()}
    assert mapped <= set(service.EVENT_TYPES)
    assert {"stream.live", "stream.ended", "replay.ready", "publish.refused"} <= mapped


def test_facts_turn_a_domain_event_into_webhook_data():
    """`facts` gives an event's fields as JSON, its stream as {"id"}."""

    @dataclass(frozen=True)
    class TargetFailed:
        stream: str
        target: str
        at: datetime

    at = datetime(2026, 11, 29, 14, 3, tzinfo=UTC)
    assert announce.facts(TargetFailed("abc", "youtube", at)) == {
        "stream": {"id": "abc"},
        "target": "youtube",
        "at": "2026-11-29T14:03:00+00:00",
    }


def test_a_new_domain_event_hooks_in_with_one_line(
    webhook_app, db, redis, receiver, creator_api, make_stream, monkeypatch
):
    """A domain event class added to WEBHOOK_EVENTS (the one line) reaches
    the endpoints that chose its webhook event, with its fields as data."""

    @dataclass(frozen=True)
    class StreamReconnecting:
        stream: str
        broadcast_id: int
        window_seconds: int

    monkeypatch.setitem(
        announce.WEBHOOK_EVENTS, StreamReconnecting, ("stream.reconnecting", announce.facts)
    )
    announce.init_app(webhook_app)
    try:
        user, api = creator_api()
        api.post("/webhooks", {"url": receiver.url, "events": ["stream.reconnecting"]})
        stream = make_stream(user)
        events.raise_event(db.session, StreamReconnecting(stream.public_id, 7, 30))
        db.session.commit()
        run_worker(redis)
    finally:
        events.unsubscribe(StreamReconnecting, announce.announce)
    [request] = receiver.requests
    assert request.json()["type"] == "stream.reconnecting"
    assert request.json()["data"] == {
        "stream": {"id": stream.public_id},
        "broadcast_id": 7,
        "window_seconds": 30,
    }


def test_the_webhook_jobs_refuse_a_malformed_event(webhook_app, db):
    """A job argument that is no event is refused before anything is read or sent."""
    for job in (jobs.deliver_webhook, jobs.deliver_test_webhook):
        for bad in ("stream.live", {"type": 5}, None, ["stream.live"]):
            with pytest.raises(ValueError, match="a webhook event is a JSON object"):
                job(1, bad)
    with pytest.raises(ValueError):
        jobs.dispatch_webhook_event("abc", {"id": "evt_1"})
    with pytest.raises(ValueError):
        jobs.deliver_webhook("not a number", {"type": "stream.live"})
