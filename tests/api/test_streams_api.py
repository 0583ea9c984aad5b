"""The JSON API's happy paths: every endpoint, its status, body, headers and rows."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select

from studio.models import Broadcast, Stream, utcnow
from studio.streams import service
from studio.streams.service import PublishAttempt

STREAM_FIELDS = {
    "id",
    "title",
    "status",
    "disabled",
    "visibility",
    "reconnect_window",
    "reconnect_deadline",
    "created_at",
    "thumbnail_url",
    "viewers",
    "node",
    "ingest",
    "playback",
    "last_refused_publish",
}


def stream_row(db, public_id: str) -> Stream | None:
    db.session.rollback()
    return db.session.scalar(select(Stream).where(Stream.public_id == public_id))


def test_create_returns_201_with_the_stream_and_its_location(api, db, owner):
    """POST /streams creates the caller's stream: 201, the stream object, Location."""
    reply = api.post("/streams", {"title": "  Friday show "})
    assert reply.status_code == 201
    body = reply.get_json()
    assert set(body) == STREAM_FIELDS
    assert reply.headers["Location"] == f"/api/v1/streams/{body['id']}"
    row = stream_row(db, body["id"])
    assert row is not None and row.owner_id == owner.id
    assert body["title"] == row.title == "Friday show"
    assert body["status"] == "created" and body["disabled"] is False
    assert body["visibility"] == row.visibility == "public"  # the default
    assert body["thumbnail_url"] is None  # nothing broadcast yet
    assert body["viewers"] == 0  # nobody has the watch page open
    assert datetime.fromisoformat(body["created_at"]) == row.created_at
    # The tests' engine is nginx-rtmp: no WebRTC, and the stream says so.
    assert body["ingest"] == {
        "protocols": ["rtmp"],
        "rtmp_server": "rtmp://ingest.studio.test/live",
        "stream_key": f"{row.public_id}?secret={row.stream_key}",
        "webrtc_url": None,
        "whip_url": None,
        "srt_url": None,  # nginx-rtmp takes no SRT
    }
    assert body["playback"] == {
        "modes": ["hls"],
        "hls_url": f"https://cdn.studio.test/live/{row.public_id}/index.m3u8",
        "whep_url": None,
        "watch_url": f"https://studio.test/watch/{row.public_id}",
    }
    assert reply.headers["Cache-Control"] == "no-store"


def test_on_srs_the_stream_has_webrtc_urls_on_the_webrtc_origin(
    api, app, db, monkeypatch, use_engine
):
    """With SRS the stream offers WebRTC: a WHIP URL and a webrtc:// URL for the
    SRS SDK, both on the origin where nginx passes /rtc/v1/ to SRS (the SDK
    is told to use https, whatever page it runs on); and SRT, with SRS's
    access-control stream id carrying the secret."""
    use_engine("srs", SRT_URL="srt://ingest.studio.test:10080")
    monkeypatch.setitem(app.config, "WEBRTC_ORIGIN", "https://rtc.studio.test:8443")
    monkeypatch.setitem(app.config, "WEBRTC_HOST", "rtc.studio.test:8443")
    body = api.post("/streams", {"title": "WebRTC show"}).get_json()
    row = stream_row(db, body["id"])
    assert body["ingest"] == {
        "protocols": ["rtmp", "webrtc", "srt"],
        "rtmp_server": "rtmp://ingest.studio.test/live",
        "stream_key": f"{row.public_id}?secret={row.stream_key}",
        "webrtc_url": (
            f"webrtc://rtc.studio.test:8443/live/{row.public_id}"
            f"?schema=https&secret={row.stream_key}"
        ),
        "whip_url": (
            f"https://rtc.studio.test:8443/rtc/v1/whip/?app=live&stream={row.public_id}"
            f"&secret={row.stream_key}"
        ),
        "srt_url": (
            f"srt://ingest.studio.test:10080?streamid=#!::r=live/{row.public_id}"
            f"?secret={row.stream_key},m=publish"
        ),
    }
    assert body["playback"]["modes"] == ["hls", "webrtc"]
    assert body["playback"]["whep_url"] == (
        f"https://rtc.studio.test:8443/rtc/v1/whep/?app=live&stream={row.public_id}"
    )


def test_on_srs_whep_is_not_offered_when_turned_off(api, app, monkeypatch, use_engine):
    """STUDIO_WHEP_MAX_VIEWERS=0 turns WebRTC playback off: HLS only, no WHEP URL."""
    use_engine("srs", WHEP_MAX_VIEWERS=0)
    body = api.post("/streams", {"title": "HLS only"}).get_json()
    assert body["playback"]["modes"] == ["hls"]
    assert body["playback"]["whep_url"] is None
    assert body["ingest"]["whip_url"] is not None  # publishing over WebRTC is unaffected


def test_titles_keep_emoji_and_right_to_left_writing(api, db):
    """A title may hold emoji sequences (joined by U+200D), right-to-left
    text and its direction marks; only overrides and controls are refused."""
    for title in ("\U0001f469\u200d\U0001f4bb coding night", "\u05e9\u05dc\u05d5\u05dd \u200fLive"):
        reply = api.post("/streams", {"title": title})
        assert reply.status_code == 201, reply.get_json()
        assert stream_row(db, reply.get_json()["id"]).title == title


def test_list_returns_only_the_callers_streams_newest_first(api, owner, make_stream):
    """GET /streams lists the caller's streams, newest first, and nobody else's."""
    first = make_stream(owner, "First")
    second = make_stream(owner, "Second")
    make_stream(title="Someone else's")
    reply = api.get("/streams")
    assert reply.status_code == 200
    streams = reply.get_json()["streams"]
    assert [s["id"] for s in streams] == [second.public_id, first.public_id]
    assert all(set(s) == STREAM_FIELDS for s in streams)


def test_get_returns_the_stream(api, owner, make_stream):
    """GET /streams/{id} returns the caller's stream with its current key."""
    stream = make_stream(owner, "Mine")
    reply = api.get(f"/streams/{stream.public_id}")
    assert reply.status_code == 200
    body = reply.get_json()
    assert body["id"] == stream.public_id and body["title"] == "Mine"
    assert body["ingest"]["stream_key"] == f"{stream.public_id}?secret={stream.stream_key}"


def test_patch_changes_title_and_disabled(api, db, owner, make_stream):
    """PATCH /streams/{id} changes the title and the disabled flag it is given."""
    stream = make_stream(owner, "Old")
    reply = api.patch(f"/streams/{stream.public_id}", {"title": "New", "disabled": True})
    assert reply.status_code == 200
    assert reply.get_json()["title"] == "New" and reply.get_json()["disabled"] is True
    row = stream_row(db, stream.public_id)
    assert (row.title, row.disabled) == ("New", True)

    reply = api.patch(f"/streams/{stream.public_id}", {"disabled": False})
    assert reply.status_code == 200
    row = stream_row(db, stream.public_id)
    assert (row.title, row.disabled) == ("New", False)


def test_delete_removes_the_stream_and_its_broadcasts(api, db, owner, make_stream):
    """DELETE /streams/{id}: 204 with no body; the stream and its broadcasts are gone."""
    stream = make_stream(owner)
    service.start_broadcast(db.session, _attempt(stream))
    service.end_broadcast(db.session, stream.public_id, "c1", "vid-1")
    db.session.commit()
    reply = api.delete(f"/streams/{stream.public_id}")
    assert reply.status_code == 204
    assert reply.data == b""
    assert stream_row(db, stream.public_id) is None
    assert db.session.scalar(select(func.count(Broadcast.id))) == 0


def test_rotate_key_returns_a_new_key_and_stores_it(api, db, owner, make_stream):
    """POST /streams/{id}/rotate-key issues a new key; the reply carries it."""
    stream = make_stream(owner)
    old_key = stream.stream_key
    reply = api.post(f"/streams/{stream.public_id}/rotate-key")
    assert reply.status_code == 200
    row = stream_row(db, stream.public_id)
    assert row.stream_key != old_key
    assert reply.get_json()["ingest"]["stream_key"] == f"{row.public_id}?secret={row.stream_key}"
    assert old_key not in reply.get_data(as_text=True)


def test_broadcasts_lists_publish_sessions_newest_first(api, db, owner, make_stream):
    """GET /streams/{id}/broadcasts lists broadcasts with times, protocol, reason, replay."""
    stream = make_stream(owner)
    first = service.start_broadcast(db.session, _attempt(stream, "c1"))
    service.end_broadcast(db.session, stream.public_id, "c1", "vid-1")
    first.replay_ready_at = first.thumbnail_at = utcnow()
    db.session.commit()
    second = service.start_broadcast(db.session, _attempt(stream, "c2", protocol="webrtc"))
    db.session.commit()

    reply = api.get(f"/streams/{stream.public_id}/broadcasts")
    assert reply.status_code == 200
    newest, oldest = reply.get_json()["broadcasts"]
    assert newest == {
        "id": second.id,
        "started_at": newest["started_at"],
        "ended_at": None,
        "protocol": "webrtc",
        "end_reason": None,
        "replay_url": None,
        "thumbnail_url": None,
        "peak_viewers": 0,
    }
    assert datetime.fromisoformat(newest["started_at"]) == second.started_at
    assert oldest["id"] == first.id and oldest["end_reason"] == "unpublish"
    assert datetime.fromisoformat(oldest["ended_at"]) == first.ended_at
    assert oldest["replay_url"] == (
        f"https://cdn.studio.test/live/{stream.public_id}/{first.id}/replay.m3u8"
    )
    assert oldest["thumbnail_url"] == (
        f"https://cdn.studio.test/live/{stream.public_id}/{first.id}/thumbnail.jpg"
    )


def test_thumbnail_url_once_the_stream_has_one(api, db, owner, make_stream):
    """A stream's thumbnail_url is its live thumbnail on the CDN once the
    thumbnail job has written one (null before)."""
    stream = make_stream(owner)
    assert api.get(f"/streams/{stream.public_id}").get_json()["thumbnail_url"] is None
    stream.thumbnail_at = utcnow()
    db.session.commit()
    body = api.get(f"/streams/{stream.public_id}").get_json()
    assert body["thumbnail_url"] == f"https://cdn.studio.test/live/{stream.public_id}/thumbnail.jpg"


def test_status_follows_publish(api, db, owner, make_stream):
    """The status in the API is the status machine's: live while publishing."""
    stream = make_stream(owner)
    service.start_broadcast(db.session, _attempt(stream))
    db.session.commit()
    assert api.get(f"/streams/{stream.public_id}").get_json()["status"] == "live"


def _attempt(stream, client_id: str = "c1", protocol: str = "rtmp") -> PublishAttempt:
    return PublishAttempt(
        stream_name=stream.public_id,
        secret=stream.stream_key,
        client_id=client_id,
        protocol=protocol,
        server_id="vid-1",
        service_id="svc-1",
    )
