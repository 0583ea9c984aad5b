"""Refused publishes told to the creator: recorded from the real hook
endpoint, shown on the stream page and in the API, sent as the
`publish.refused` webhook, and written at a bounded rate."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from studio.core import refusals
from studio.models import PublishRefusal
from tests.api.helpers import Api
from tests.conftest import load_fixture

SRS = "/hooks/srs?token=test-hook-token"
NGINX = "/hooks/nginx-rtmp?token=test-hook-token"


def srs_publish(client, stream, key: str, client_id: str = "c1", ip: str = "203.0.113.9"):
    body = load_fixture("on_publish.json") | {
        "stream": stream.public_id,
        "param": f"?secret={key}",
        "client_id": client_id,
        "ip": ip,
    }
    return client.post(SRS, data=json.dumps(body), content_type="application/json").get_json()


def rows(db, stream=None) -> list[PublishRefusal]:
    db.session.rollback()
    query = select(PublishRefusal).order_by(PublishRefusal.id)
    if stream is not None:
        query = query.where(PublishRefusal.stream_id == stream.id)
    return list(db.session.scalars(query))


def window_passes(redis) -> None:
    """What WINDOW seconds do: the rate gate's keys expire."""
    for key in redis.scan_iter("studio:publish-refused:*"):
        redis.delete(key)


def test_an_old_key_is_recorded_and_shown_on_the_page_and_in_the_api(
    client, db, redis, auth, make_user, make_stream, make_token
):
    """OBS with an old key: refused as before, and the creator sees "A
    publish with an old key was refused at <time> from 203.0.113.9"."""
    user = make_user()
    stream = make_stream(user)
    old_key = stream.stream_key
    public_id = stream.public_id
    reply = srs_publish(client, stream, "an-old-key")
    assert reply["code"] != 0
    [row] = rows(db)
    assert (row.reason, row.ip) == ("old key", "203.0.113.9")
    assert old_key != "an-old-key"

    auth.login(user.email)
    page = client.get(f"/streams/{public_id}").get_data(as_text=True)
    assert "A publish with an old key was refused at" in page
    assert f'datetime="{row.refused_at.isoformat()}"' in page
    assert "203.0.113.9" in page

    api = Api(client, make_token(user))
    body = api.get(f"/streams/{public_id}").get_json()
    assert body["last_refused_publish"]["reason"] == "old key"
    assert body["last_refused_publish"]["address"] == "203.0.113.9"
    listed = api.get("/streams").get_json()["streams"][0]
    assert listed["last_refused_publish"] == body["last_refused_publish"]


def test_a_stream_without_refusals_says_nothing(
    client, db, auth, make_user, make_stream, make_token
):
    """No refusal recorded: nothing on the page, null in the API."""
    user = make_user()
    stream = make_stream(user)
    auth.login(user.email)
    assert "refused" not in client.get(f"/streams/{stream.public_id}").get_data(as_text=True)
    api = Api(client, make_token(user))
    assert api.get(f"/streams/{stream.public_id}").get_json()["last_refused_publish"] is None


def test_each_reason_is_recorded_in_words(client, db, redis, make_user, make_stream, app):
    """Disabled, already live and live limit are recorded as such."""
    user = make_user()
    stream = make_stream(user)
    assert srs_publish(client, stream, stream.stream_key, client_id="live1")["code"] == 0
    assert srs_publish(client, stream, stream.stream_key, client_id="intruder")["code"] != 0
    other = make_stream(user)
    app.config["MAX_LIVE_PER_USER"], before = 1, app.config["MAX_LIVE_PER_USER"]
    try:
        assert srs_publish(client, other, other.stream_key)["code"] != 0
    finally:
        app.config["MAX_LIVE_PER_USER"] = before
    third = make_stream(user)
    third.disabled = True
    db.session.commit()
    assert srs_publish(client, third, third.stream_key)["code"] != 0
    assert [r.reason for r in rows(db)] == ["already live", "live limit", "stream disabled"]


def test_hammering_writes_one_row_per_reason_and_window_and_keeps_the_last_five(
    client, db, redis, make_stream
):
    """Fifty wrong-key attempts in a row: one row. Once the window passes
    the next one is recorded; never more than five are kept."""
    stream = make_stream()
    for number in range(50):
        assert srs_publish(client, stream, "wrong", client_id=f"a{number}")["code"] != 0
    assert len(rows(db)) == 1
    for number in range(7):
        window_passes(redis)
        srs_publish(client, stream, "wrong", ip=f"198.51.100.{number}")
    kept = rows(db)
    assert len(kept) == refusals.KEEP == 5
    assert [r.ip for r in kept] == [f"198.51.100.{n}" for n in range(2, 7)]


def test_refusals_that_are_no_news_to_the_creator_are_not_recorded(client, db, redis, make_stream):
    """An unknown stream, another app: refused as always, nothing written."""
    stream = make_stream()
    body = load_fixture("on_publish.json") | {"stream": "nosuchstream", "param": "?secret=x"}
    assert client.post(SRS, data=json.dumps(body), content_type="application/json").status_code
    body = load_fixture("on_publish.json") | {"stream": stream.public_id, "app": "other"}
    client.post(SRS, data=json.dumps(body), content_type="application/json")
    assert rows(db) == []
    assert redis.keys("studio:publish-refused:*") == []


def test_nginx_rtmp_callbacks_are_recorded_too(client, db, redis, make_stream):
    """The nginx-rtmp dialect (form body, `addr`) records the same way."""
    stream = make_stream()
    form = {
        "call": "publish",
        "app": "live",
        "name": stream.public_id,
        "secret": "stale",
        "addr": "192.0.2.44",
        "clientid": "7",
    }
    reply = client.post(NGINX, data=form)
    assert reply.status_code == 403
    [row] = rows(db, stream)
    assert (row.reason, row.ip) == ("old key", "192.0.2.44")


def test_a_malformed_address_is_stored_as_none(client, db, redis, make_stream):
    """An address that is no IP address is not stored (nor shown)."""
    stream = make_stream()
    srs_publish(client, stream, "wrong", ip="not an ip <script>")
    [row] = rows(db, stream)
    assert row.ip == ""


def test_redis_down_still_refuses_and_records_nothing(client, db, make_stream, monkeypatch):
    """The gate cannot be checked: nothing is written (no unbounded writes)."""
    import redis as redis_lib

    from studio.hooks import views

    class Down:
        def set(self, *args, **kwargs):
            raise redis_lib.ConnectionError("down")

    monkeypatch.setattr(views, "get_redis", lambda: Down())
    stream = make_stream()
    assert srs_publish(client, stream, "wrong")["code"] != 0
    assert db.session.scalar(select(func.count(PublishRefusal.id))) == 0


@pytest.mark.usefixtures("redis")
def test_deleting_the_stream_deletes_its_refusals(client, db, make_stream):
    """A deleted stream's refusals go with it."""
    from studio.streams import service

    stream = make_stream()
    srs_publish(client, stream, "wrong")
    service.delete_stream(db.session, stream)
    db.session.commit()
    assert rows(db) == []
