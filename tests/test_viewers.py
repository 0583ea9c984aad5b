"""The viewer count (studio/viewers.py) against a real Redis."""

from __future__ import annotations

import pytest
import redis as redis_lib

from studio import viewers
from tests.polling import wait_until


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
