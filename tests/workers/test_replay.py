"""Replay: the VOD playlist of an ended broadcast, written after its last segment."""

from __future__ import annotations

import json
import re

from sqlalchemy import event

from studio.storage import layout
from studio.streams import service as streams
from workers import jobs
from workers.pipeline import sync


def test_ended_broadcast_gets_a_complete_vod_playlist(pipeline_app, db, redis, bucket, live_stream):
    """Finalizing uploads what is left, then writes replay.m3u8 with every
    segment in order (VOD, ENDLIST, right TARGETDURATION, long caching),
    sets replay_ready_at, ends the live playlist and announces the replay."""
    stream, broadcast, hls = live_stream
    for number in range(1, 7):
        hls.add_segment(number)
    hls.write_fixture_playlist()
    streams.end_broadcast(db.session, stream.public_id, "client-1", "nginx-rtmp")
    db.session.commit()
    pubsub = redis.pubsub()
    pubsub.subscribe(f"studio:stream:{stream.public_id}")

    result = jobs.finalize_broadcast(broadcast.id)

    assert result == {"status": "ready", "broadcast": broadcast.id}
    status, headers, body = bucket.get(layout.replay_playlist(stream.public_id, broadcast.id))
    assert status == 200
    assert headers["Content-Type"] == "application/vnd.apple.mpegurl"
    assert headers["Cache-Control"] == "public, max-age=86400"
    text = body.decode()
    assert text.startswith("#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-PLAYLIST-TYPE:VOD\n")
    assert "#EXT-X-TARGETDURATION:2\n" in text
    assert re.findall(r"^(\d+)\.ts$", text, re.M) == [str(n) for n in range(1, 7)]
    assert re.findall(r"#EXTINF:([\d.]+),", text) == ["2.000"] * 5 + ["1.667"]
    assert text.endswith("#EXT-X-ENDLIST\n")
    for number in range(1, 7):
        assert bucket.get(layout.segment(stream.public_id, broadcast.id, number))[0] == 200
    live = bucket.get(layout.live_playlist(stream.public_id))[2].decode()
    assert live.endswith("#EXT-X-ENDLIST\n")
    db.session.refresh(broadcast)
    assert broadcast.replay_ready_at is not None
    events = [m for m in _messages(pubsub) if m.get("type") == "replay"]
    assert events == [
        {"type": "replay", "stream": stream.public_id, "broadcast": {"id": broadcast.id}}
    ]


def test_finalize_is_idempotent_and_ignores_live_broadcasts(pipeline_app, db, bucket, live_stream):
    """A live broadcast is not finalized; finalizing twice writes the same replay."""
    stream, broadcast, hls = live_stream
    hls.add_segment(1)
    hls.write_playlist([1])

    assert jobs.finalize_broadcast(broadcast.id) == {"status": "live"}
    assert jobs.finalize_broadcast(999_999) == {"status": "missing"}

    streams.end_broadcast(db.session, stream.public_id, "client-1", "nginx-rtmp")
    db.session.commit()
    jobs.finalize_broadcast(broadcast.id)
    first = bucket.get(layout.replay_playlist(stream.public_id, broadcast.id))[2]
    jobs.finalize_broadcast(broadcast.id)
    assert bucket.get(layout.replay_playlist(stream.public_id, broadcast.id))[2] == first


def test_finalize_reads_the_broadcast_list_once_per_sync_pass(
    pipeline_app, db, bucket, live_stream, monkeypatch
):
    """Who owns the files left on disk is told by the broadcasts the last
    sync pass read: the database is not asked for them a second time."""
    stream, broadcast, hls = live_stream
    for number in range(1, 4):
        hls.add_segment(number)
    hls.write_fixture_playlist()
    streams.end_broadcast(db.session, stream.public_id, "client-1", "nginx-rtmp")
    db.session.commit()
    passes = []
    real_pass = sync.sync_group
    monkeypatch.setattr(sync, "sync_group", lambda *a, **k: passes.append(1) or real_pass(*a, **k))
    listings = []

    def count(conn, cursor, statement, parameters, context, executemany):
        if "ORDER BY broadcasts.started_at DESC" in statement:
            listings.append(statement)

    event.listen(db.engine, "before_cursor_execute", count)
    try:
        assert jobs.finalize_broadcast(broadcast.id)["status"] == "ready"
    finally:
        event.remove(db.engine, "before_cursor_execute", count)
    assert passes and len(listings) == len(passes)


def _messages(pubsub) -> list[dict]:
    found = []
    while (message := pubsub.get_message(timeout=0.5)) is not None:
        if message["type"] == "message":
            found.append(json.loads(message["data"]))
    return found
