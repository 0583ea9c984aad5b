"""The viewer count (studio/viewers.py) against a real Redis."""

from __future__ import annotations

import json

import pytest
import redis as redis_lib

from studio import fanout, viewers
from tests.polling import poll, wait_until


@pytest.fixture()
def counter(app, redis, monkeypatch):
    # Expiry far beyond the test: only an explicit removal can uncount a viewer.
    monkeypatch.setitem(app.config, "VIEWER_EXPIRY", 600.0)
    monkeypatch.setitem(app.config, "VIEWER_HEARTBEAT", 0.5)
    monkeypatch.setitem(app.config, "VIEWER_PUSH_INTERVAL", 0.1)
    running = viewers.ViewerCounter(app)
    yield running
    running.stop()


def test_a_leaving_viewer_is_uncounted_at_once(app, counter):
    first, _second = counter.add("s1"), counter.add("s1")
    assert viewers.count(app, "s1") == 2
    counter.remove("s1", first)
    assert viewers.count(app, "s1") == 1


@pytest.fixture()
def app_user(app, redis, monkeypatch):
    """The app's Redis client logged in as a user of its own, whose commands
    the test may take away (ACL): a real Redis refusing a real command."""
    redis.acl_setuser("viewers-test", enabled=True, nopass=True, commands=["+@all"], keys=["*"])
    client = redis_lib.Redis.from_url(app.config["REDIS_URL"], username="viewers-test")
    monkeypatch.setitem(app.extensions, "studio_redis", client)
    yield "viewers-test"
    client.close()
    redis.acl_deluser("viewers-test")


def test_a_viewer_who_leaves_while_redis_fails_is_uncounted_when_it_answers(
    app, redis, app_user, counter
):
    """The removal is retried by the counter's thread, not left to the expiry."""
    first, _second = counter.add("s1"), counter.add("s1")
    redis.acl_setuser(app_user, commands=["-zrem"])
    counter.remove("s1", first)
    assert viewers.count(app, "s1") == 2  # the removal failed
    redis.acl_setuser(app_user, commands=["+zrem"])
    wait_until(lambda: viewers.count(app, "s1") == 1, 30, "the retried removal")
    assert redis.zscore(viewers.key("s1"), first) is None


def test_a_join_and_a_leave_between_two_pushes_are_pushed(app, redis, counter, monkeypatch):
    """One viewer (pushed: 1); a second joins, is shown 2 by its own first
    status, and the first leaves before the next push: the count is back at 1,
    as last pushed, yet the second viewer must hear it."""
    monkeypatch.setattr(counter, "_push_interval", 2.0)  # both happen between two passes
    events = redis.pubsub(ignore_subscribe_messages=True)
    events.subscribe(fanout.channel("s1"))
    first = counter.add("s1")
    assert next_viewers_event(events) == 1
    counter.add("s1")
    assert viewers.count(app, "s1") == 2  # what the joining socket's status says
    counter.remove("s1", first)
    assert next_viewers_event(events) == 1
    events.close()


def next_viewers_event(events) -> int | None:
    """The count of the next `viewers` event on the subscribed channel."""

    def viewers_event():
        message = events.get_message(timeout=0.1)
        event = json.loads(message["data"]) if message else {}
        return event if event.get("type") == "viewers" else None

    event = poll(viewers_event, 15)
    return event and event["viewers"]
