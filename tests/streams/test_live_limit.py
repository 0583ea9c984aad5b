"""Cost guard at publish time: a creator may have at most
MAX_LIVE_PER_USER streams live at once."""

from __future__ import annotations

import json
import threading

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from studio.models import Broadcast
from studio.streams import service
from tests.conftest import load_fixture
from tests.polling import wait_until

HOOK = "/hooks/srs?token=test-hook-token"


@pytest.fixture()
def limit_one(app):
    saved = app.config["MAX_LIVE_PER_USER"]
    app.config["MAX_LIVE_PER_USER"] = 1
    yield
    app.config["MAX_LIVE_PER_USER"] = saved


def publish(client, stream, client_id: str, action: str = "on_publish"):
    body = {
        **load_fixture(f"{action}.json"),
        "stream": stream.public_id,
        "client_id": client_id,
        "param": f"?secret={stream.stream_key}",
    }
    return client.post(HOOK, data=json.dumps(body), content_type="application/json").get_json()


def test_second_live_stream_of_a_creator_is_refused(client, db, make_user, make_stream, limit_one):
    """With a limit of 1, a creator's second stream is refused with the reason
    while the first is live, and accepted once the first has ended."""
    owner = make_user()
    first, second = make_stream(owner=owner), make_stream(owner=owner)
    assert publish(client, first, "c1") == {"code": 0}
    refused = publish(client, second, "c2")
    assert refused["code"] != 0
    assert "live stream limit reached (1 at a time)" in refused["error"]
    db.session.refresh(second)
    assert second.status == "created"
    assert db.session.query(Broadcast).count() == 1

    assert publish(client, first, "c1", "on_unpublish") == {"code": 0}
    assert publish(client, second, "c2b") == {"code": 0}


def test_limit_is_per_creator(client, db, make_stream, limit_one):
    """Two creators each go live under a limit of 1."""
    assert publish(client, make_stream(), "a1") == {"code": 0}
    assert publish(client, make_stream(), "b1") == {"code": 0}


def test_repeated_publish_of_the_live_publisher_still_accepted(client, db, make_stream, limit_one):
    """A repeated on_publish of the publisher that is live does not count against the limit."""
    stream = make_stream()
    assert publish(client, stream, "c1") == {"code": 0}
    assert publish(client, stream, "c1") == {"code": 0}


def test_zero_means_no_limit(app, client, db, make_user, make_stream):
    """MAX_LIVE_PER_USER = 0 turns the limit off."""
    saved = app.config["MAX_LIVE_PER_USER"]
    app.config["MAX_LIVE_PER_USER"] = 0
    try:
        owner = make_user()
        for n in range(4):
            assert publish(client, make_stream(owner=owner), f"z{n}") == {"code": 0}
    finally:
        app.config["MAX_LIVE_PER_USER"] = saved


def _attempt(stream, client_id: str) -> service.PublishAttempt:
    return service.PublishAttempt(
        stream_name=stream.public_id,
        secret=stream.stream_key,
        client_id=client_id,
        protocol="rtmp",
        service_id="s1",
    )


def test_two_streams_going_live_at_once_cannot_both_slip_under_the_limit(
    app, db, make_user, make_stream
):
    """A publish waits for the owner's row while another of their streams is
    going live, then counts that one as live: with a limit of 1 it is refused."""
    owner = make_user()
    first, second = make_stream(owner=owner), make_stream(owner=owner)
    limits = service.PublishLimits(max_live_per_user=1)
    outcome: dict[str, str] = {}

    def publish_second() -> None:
        with app.app_context(), Session(db.engine) as session:
            try:
                service.start_broadcast(session, _attempt(second, "c2"), limits)
                session.commit()
                outcome["second"] = "accepted"
            except service.PublishRefused as exc:
                outcome["second"] = exc.reason

    def waiting_on_a_lock() -> int:
        with db.engine.connect() as monitor:
            return monitor.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                    " AND datname = current_database()"
                )
            )

    with Session(db.engine) as holder:
        service.start_broadcast(holder, _attempt(first, "c1"), limits)  # holds the locks
        thread = threading.Thread(target=publish_second)
        thread.start()
        try:
            wait_until(waiting_on_a_lock, what="the second publish to wait for the owner")
            holder.commit()
        finally:
            thread.join(timeout=30)
    assert outcome == {"second": "live stream limit reached (1 at a time)"}
