"""Multistream targets over the JSON API: add, list, change, remove; keys go
in and never come out; bad input is refused and changes nothing."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from studio import secretbox
from studio.models import Target
from studio.streams import targets

TWITCH_KEY = "live_123456789_abcdefghijklmnopWXYZ"
TARGET_FIELDS = {
    "id",
    "name",
    "url",
    "key_hint",
    "enabled",
    "state",
    "last_error",
    "state_changed_at",
    "created_at",
}


def twitch(**overrides) -> dict:
    return {"name": "Twitch", "url": "rtmp://live.twitch.tv/app", "key": TWITCH_KEY} | overrides


def count_targets(db) -> int:
    db.session.rollback()
    return db.session.scalar(select(func.count(Target.id)))


@pytest.fixture()
def stream(make_stream, owner):
    return make_stream(owner)


def test_add_returns_the_target_without_its_key(api, app, db, stream):
    """POST /targets: 201, the target with the key's last 4 characters only,
    state `stopped` (the stream is not live), and its URL in Location."""
    reply = api.post(
        f"/streams/{stream.public_id}/targets", twitch(url="rtmp://live.twitch.tv/app/")
    )
    assert reply.status_code == 201, reply.get_json()
    body = reply.get_json()
    assert set(body) == TARGET_FIELDS
    assert body["name"] == "Twitch"
    assert body["url"] == "rtmp://live.twitch.tv/app"  # the trailing slash is dropped
    assert body["key_hint"] == "WXYZ"
    assert body["enabled"] is True
    assert (body["state"], body["last_error"]) == ("stopped", None)
    assert TWITCH_KEY not in reply.get_data(as_text=True)
    assert reply.headers["Location"] == f"/api/v1/streams/{stream.public_id}/targets/{body['id']}"
    assert reply.headers["Cache-Control"] == "no-store"


def test_the_key_is_encrypted_in_the_database(api, app, db, stream):
    """The row holds the key encrypted (Fernet with the app's key), not in clear."""
    body = api.post(f"/streams/{stream.public_id}/targets", twitch()).get_json()
    db.session.rollback()
    row = db.session.get(Target, body["id"])
    stored = bytes(row.key_encrypted)
    assert TWITCH_KEY.encode() not in stored
    assert stored.startswith(b"gAAAA")  # a Fernet token
    assert secretbox.from_config(app.config).open(stored) == TWITCH_KEY
    other = secretbox.SecretBox([secretbox.derived_key("another secret key")])
    with pytest.raises(secretbox.InvalidToken):
        other.open(stored)


def test_list_shows_state_and_last_error_never_the_key(api, db, stream):
    """GET /targets lists the stream's targets oldest first, with each relay's state."""
    first = api.post(f"/streams/{stream.public_id}/targets", twitch()).get_json()
    second = api.post(
        f"/streams/{stream.public_id}/targets",
        {"name": "Backup", "url": "rtmps://backup.example:443/live", "key": "k-1234567890"},
    ).get_json()
    targets.record_state(db.session, second["id"], "retrying", "Connection refused")
    db.session.commit()
    reply = api.get(f"/streams/{stream.public_id}/targets")
    assert reply.status_code == 200
    listed = reply.get_json()["targets"]
    assert [t["id"] for t in listed] == [first["id"], second["id"]]
    assert listed[1]["state"] == "retrying"
    assert listed[1]["last_error"] == "Connection refused"
    assert listed[1]["key_hint"] == "7890"
    assert "k-1234567890" not in reply.get_data(as_text=True)


def test_a_short_key_shows_nothing_of_itself(api, stream):
    """A key of 8 characters or fewer is not half shown: its hint is empty."""
    body = api.post(f"/streams/{stream.public_id}/targets", twitch(key="abc12345")).get_json()
    assert body["key_hint"] == ""


def test_patch_changes_fields_and_the_key(api, app, db, stream):
    """PATCH changes any of name, url, key, enabled; a new key is encrypted too."""
    body = api.post(f"/streams/{stream.public_id}/targets", twitch()).get_json()
    path = f"/streams/{stream.public_id}/targets/{body['id']}"
    reply = api.patch(path, {"enabled": False})
    assert reply.status_code == 200
    assert reply.get_json()["enabled"] is False
    reply = api.patch(path, {"key": "new-key-0000-9876", "name": "Twitch main"})
    assert reply.status_code == 200
    changed = reply.get_json()
    assert (changed["name"], changed["key_hint"], changed["enabled"]) == (
        "Twitch main",
        "9876",
        False,
    )
    db.session.rollback()
    row = db.session.get(Target, body["id"])
    assert secretbox.from_config(app.config).open(row.key_encrypted) == "new-key-0000-9876"


def test_delete_removes_the_target(api, db, stream):
    body = api.post(f"/streams/{stream.public_id}/targets", twitch()).get_json()
    reply = api.delete(f"/streams/{stream.public_id}/targets/{body['id']}")
    assert reply.status_code == 204
    assert count_targets(db) == 0
    assert api.delete(f"/streams/{stream.public_id}/targets/{body['id']}").status_code == 404


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (twitch(url="http://live.twitch.tv/app"), "url"),
        (twitch(url="srt://host:10080"), "url"),
        (twitch(url="rtmp:///app"), "url"),
        (twitch(url="rtmp://user:pw@host/app"), "url"),
        (twitch(url="rtmp://host:99999/app"), "url"),
        (twitch(url="rtmp://host/app with space"), "url"),
        (twitch(url="rtmp://host/" + "a" * 600), "url"),
        (twitch(url="rtmp://host/app#x"), "url"),
        (twitch(key=""), "key"),
        (twitch(key="a b"), "key"),
        (twitch(key="k" * 501), "key"),
        (twitch(key="tab\there"), "key"),
        (twitch(name=" "), "name"),
        (twitch(name="n" * 81), "name"),
        (twitch(name="bell\x07"), "name"),
        (twitch(enabled="yes"), "enabled"),
        (twitch(enabled=None), "enabled"),
        (twitch(key=123), "key"),
        (twitch(extra=1), "extra"),
        ({"name": "x", "url": "rtmp://host/app"}, "key"),
    ],
)
def test_bad_targets_are_refused_and_change_nothing(api, db, stream, body, field):
    """A bad name, URL (scheme, host, credentials, port, spaces, length), key or
    flag is a 400 naming the field; no row is written."""
    reply = api.post(f"/streams/{stream.public_id}/targets", body)
    assert reply.status_code == 400, reply.get_json()
    assert field in reply.get_json()["fields"], reply.get_json()
    assert count_targets(db) == 0


LOCAL_URLS = [
    "rtmp://127.0.0.1/live",
    "rtmp://127.0.0.1:1935/live",
    "rtmp://10.0.0.1/live",
    "rtmp://192.168.1.20/app",
    "rtmps://169.254.169.254/x",
    "rtmp://[::1]/live",
    "rtmp://[fd00::1]/live",
    "rtmp://localhost/live",
    "rtmp://0.0.0.0/live",
]


@pytest.mark.parametrize("url", LOCAL_URLS)
def test_loopback_private_and_link_local_targets_are_refused(
    api, app, db, stream, url, monkeypatch
):
    """A target on a loopback, private or link-local address (or localhost)
    is refused when added or changed, as webhooks are, unless the operator
    allows it (STUDIO_TARGET_ALLOW_PRIVATE, for a local stand-in server)."""
    reply = api.post(f"/streams/{stream.public_id}/targets", twitch(url=url))
    assert reply.status_code == 400, reply.get_json()
    assert "private or local address" in reply.get_json()["fields"]["url"]
    assert count_targets(db) == 0
    target = api.post(f"/streams/{stream.public_id}/targets", twitch()).get_json()
    path = f"/streams/{stream.public_id}/targets/{target['id']}"
    assert api.patch(path, {"url": url}).status_code == 400
    monkeypatch.setitem(app.config, "TARGET_ALLOW_PRIVATE", True)
    assert api.patch(path, {"url": url}).status_code == 200


def test_nul_bytes_are_refused(api, db, stream):
    """A NUL anywhere (here in the key) is refused before any view runs."""
    raw = json.dumps(twitch(key="abc\u0000def123"))
    reply = api.post(
        f"/streams/{stream.public_id}/targets", data=raw, content_type="application/json"
    )
    assert reply.status_code == 400
    assert count_targets(db) == 0


def test_a_stream_has_at_most_max_targets(api, app, db, stream, monkeypatch):
    """Past STUDIO_MAX_TARGETS a new target is refused."""
    monkeypatch.setitem(app.config, "MAX_TARGETS", 2)
    for number in range(2):
        reply = api.post(f"/streams/{stream.public_id}/targets", twitch(name=f"T{number}"))
        assert reply.status_code == 201
    reply = api.post(f"/streams/{stream.public_id}/targets", twitch(name="One too many"))
    assert reply.status_code == 400
    assert reply.get_json()["error"] == "A stream has at most 2 targets."
    assert count_targets(db) == 2


def test_patch_refuses_bad_input_and_empty_bodies(api, db, stream):
    body = api.post(f"/streams/{stream.public_id}/targets", twitch()).get_json()
    path = f"/streams/{stream.public_id}/targets/{body['id']}"
    for bad in ({}, {"url": "ftp://x/y"}, {"enabled": "false"}, {"key": None}, {"state": "live"}):
        assert api.patch(path, bad).status_code == 400, bad
    db.session.rollback()
    row = db.session.get(Target, body["id"])
    assert (row.url, row.enabled, row.state) == ("rtmp://live.twitch.tv/app", True, "stopped")


def test_other_creators_targets_are_404(api, db, make_stream, make_user, stream):
    """Another creator's stream, a target of another stream and ids that cannot
    exist are all 404, and nothing changes."""
    theirs = make_stream(make_user())
    mine = api.post(f"/streams/{stream.public_id}/targets", twitch()).get_json()
    assert api.get(f"/streams/{theirs.public_id}/targets").status_code == 404
    assert api.post(f"/streams/{theirs.public_id}/targets", twitch()).status_code == 404
    other = make_stream(stream.owner)
    reply = api.patch(f"/streams/{other.public_id}/targets/{mine['id']}", {"enabled": False})
    assert reply.status_code == 404
    assert reply.get_json()["error"] == "Target not found."
    for bad in ("abc", "0", "-1", str(2**40)):
        reply = api.delete(f"/streams/{stream.public_id}/targets/{bad}")
        assert reply.status_code == 404, bad
    assert count_targets(db) == 1


def test_target_changes_are_announced_on_the_streams_channel(api, redis, stream):
    """Adding, changing or removing a target tells the relay process (and the
    owner's pages) through the stream's Redis channel."""
    pubsub = redis.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(f"studio:stream:{stream.public_id}")
    pubsub.get_message(timeout=1)
    body = api.post(f"/streams/{stream.public_id}/targets", twitch()).get_json()
    api.patch(f"/streams/{stream.public_id}/targets/{body['id']}", {"enabled": False})
    api.delete(f"/streams/{stream.public_id}/targets/{body['id']}")
    messages = []
    while len(messages) < 3:
        message = pubsub.get_message(timeout=5)
        assert message is not None, messages
        messages.append(json.loads(message["data"]))
    assert messages == [{"type": "targets", "stream": stream.public_id}] * 3
    pubsub.close()
