"""The reconnect window through SRS callbacks recorded from a real SRS 5:
an RTMP publisher that drops and a WHIP publisher of the same stream that
comes in time continue one broadcast; a late duplicate unpublish of the
first changes nothing."""

from __future__ import annotations

from sqlalchemy import select

from studio.models import Broadcast
from tests.conftest import load_fixture
from tests.hooks.test_srs_hooks import accepted, post, srs_stream  # noqa: F401 (fixture)


def test_rtmp_then_whip_within_the_window_is_one_broadcast(client, db, srs_stream):  # noqa: F811
    """on_publish (RTMP), on_unpublish: reconnecting; on_publish (WHIP, new
    client id) of that stream: live again, the same broadcast, now WebRTC."""
    stream = srs_stream(name="whiptest", reconnect_window=60)
    rtmp = {**load_fixture("on_publish.json"), "stream": "whiptest"}
    assert accepted(post(client, rtmp))
    gone = {**load_fixture("on_unpublish.json"), "stream": "whiptest"}
    assert accepted(post(client, gone))
    db.session.refresh(stream)
    assert stream.status == "reconnecting"

    assert accepted(post(client, load_fixture("on_publish_whip.json")))
    db.session.refresh(stream)
    assert stream.status == "live"
    (broadcast,) = db.session.scalars(select(Broadcast)).all()
    assert (broadcast.client_id, broadcast.protocol, broadcast.ended_at) == (
        "736wp9a3",
        "webrtc",
        None,
    )
    assert accepted(post(client, gone))  # the RTMP client's unpublish again
    db.session.refresh(stream)
    assert stream.status == "live"
