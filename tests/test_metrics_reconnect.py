"""/metrics and the reconnect window: a broadcast waiting for its publisher
is not a live stream without segments (no LiveStreamWithoutSegments page
for a creator's dropped Wi-Fi)."""

from __future__ import annotations

from datetime import timedelta

from studio.models import Broadcast, utcnow
from studio.streams import service
from studio.streams.service import PublishAttempt
from tests.metrics_helpers import value
from tests.test_metrics import scrape

STALE = "studio_live_streams_without_recent_segments"


def test_a_reconnecting_broadcast_is_not_counted_stale(client, db, make_stream):
    """Two broadcasts an hour old without segments: the live one counts, the
    reconnecting one does not; neither is among the live streams."""
    live, waiting = make_stream(), make_stream(reconnect_window=1800)
    for stream in (live, waiting):
        service.start_broadcast(
            db.session, PublishAttempt(stream.public_id, stream.stream_key, "c1", "rtmp")
        )
    db.session.commit()
    service.end_broadcast(db.session, waiting.public_id, "c1")
    for broadcast in db.session.query(Broadcast):
        broadcast.started_at = utcnow() - timedelta(hours=1)
    db.session.commit()
    text = scrape(client)
    assert value(text, STALE) == 1
    assert value(text, "studio_live_streams") == 1
