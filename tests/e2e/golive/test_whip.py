"""Going live over WebRTC (WHIP) from Chromium's fake camera, against
SrsWhipDouble (a test double for SRS 5's WHIP endpoint: SRS cannot run
here), and the automatic fallback to the WebSocket when ICE cannot connect.

The studio runs with MEDIA_ENGINE=srs and STUDIO_WHIP_URL pointing at the
double (in production nginx serves /rtc/v1/whip/ on the studio's origin);
the WebSocket fallback publishes into a real nginx-rtmp.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import BrowserContext, expect
from sqlalchemy import select

from studio.models import Broadcast
from tests.conftest import VAR
from tests.e2e.golive.harness import ffmpeg_pids, run_coturn, run_studio
from tests.e2e.golive.pages import open_go_live
from tests.e2e.golive.whip_double import SrsWhipDouble, first_video_codec
from tests.polling import wait_until

ICE_TIMEOUT = 5  # seconds, the studio default the page promises
GATHERING = 2  # the page sends its offer after at most 2 s of candidate gathering
KBIT = re.compile(r"^\d+ kbit/s$")


@pytest.fixture(scope="module")
def double():
    with SrsWhipDouble() as running:
        yield running


@pytest.fixture(scope="module")
def coturn():
    with run_coturn(VAR / "golive-whip", "whip-test-turn-secret") as running:
        yield running


@pytest.fixture(scope="module")
def studio(app, services, double, coturn):
    token = app.config["HOOK_TOKEN"]
    env = {
        "STUDIO_MEDIA_ENGINE": "srs",
        "STUDIO_WHIP_URL": double.whip_url,
        "STUDIO_SRS_API_URL": "http://127.0.0.1:9",  # no SRS API: health says unreachable
        "STUDIO_WHIP_ICE_TIMEOUT": str(ICE_TIMEOUT),
        "STUDIO_TURN_URLS": coturn.url,
        "STUDIO_TURN_SECRET": coturn.secret,
    }
    with run_studio(VAR / "golive-whip", services, token, env) as running:
        double.hook_url = f"{running.url}/hooks/srs?token={token}"
        yield running


@pytest.fixture()
def unreachable(double):
    double.unreachable = True
    yield double
    double.unreachable = False


def broadcasts(db, stream) -> list[Broadcast]:
    db.session.expire_all()
    query = select(Broadcast).where(Broadcast.stream_id == stream.id).order_by(Broadcast.id)
    return list(db.session.scalars(query))


def test_whip_offer_prefers_h264_frames_arrive_and_stop_deletes(
    studio, double, coturn, context: BrowserContext, db, make_user, make_stream
):
    """On SRS the page publishes over WHIP with H.264 first in its offer
    (SRS's RTMP/HLS bridge needs it) and TURN relay candidates from the
    studio's credentials; H.264 frames reach the server; Stop DELETEs the
    WHIP session so the stream ends at once."""
    owner = make_user()
    stream = make_stream(owner)
    golive = open_go_live(context, studio.url, owner.email, stream.public_id)
    golive.go_live_button.click()

    expect(golive.path).to_have_attribute("data-path", "webrtc", timeout=15_000)
    expect(golive.path).to_contain_text("WebRTC (WHIP)")
    expect(golive.status).to_have_text("LIVE")
    session = double.sessions[-1]
    assert session.stream == stream.public_id
    assert first_video_codec(session.offer) == "H264"
    assert first_video_codec(session.answer) == "H264"
    # The page used the studio's TURN credentials: coturn gave it a relay address.
    relay = re.search(r"a=candidate:.* 127\.0\.0\.1 (\d+) typ relay", session.offer)
    assert relay and int(relay.group(1)) in coturn.relay_ports
    wait_until(lambda: double.frames("video") > 0, 20, "decoded H.264 frames at the double")
    expect(golive.health("bitrate")).to_have_text(KBIT, timeout=10_000)
    assert [b.protocol for b in broadcasts(db, stream)] == ["webrtc"]

    golive.stop()
    wait_until(lambda: session.token in double.deletes, 10, "DELETE of the WHIP Location")
    expect(golive.status).to_have_text("ended")
    assert broadcasts(db, stream)[0].ended_at is not None


def test_ice_failure_falls_back_to_websocket_and_goes_live(
    studio, unreachable, context: BrowserContext, db, make_user, make_stream
):
    """When WebRTC cannot connect (the server's only candidate never
    answers), the page gives up after the promised 5 s, ends the half-made
    WHIP session, switches to the WebSocket, says so, and the stream goes live."""
    owner = make_user()
    stream = make_stream(owner)
    golive = open_go_live(context, studio.url, owner.email, stream.public_id)
    golive.go_live_button.click()

    # The promise plus gathering, plus a few seconds for the socket and ffmpeg.
    expect(golive.path).to_have_attribute(
        "data-path", "websocket", timeout=(ICE_TIMEOUT + GATHERING + 8) * 1000
    )
    expect(golive.path).to_contain_text(f"could not connect within {ICE_TIMEOUT} s")
    expect(golive.status).to_have_text("LIVE", timeout=20_000)
    whip_session = unreachable.sessions[-1]
    assert whip_session.token in unreachable.deletes
    assert whip_session.frames["video"] == 0
    assert [b.protocol for b in broadcasts(db, stream)] == ["webrtc", "websocket"]

    golive.stop()
    expect(golive.status).to_have_text("ended", timeout=20_000)
    wait_until(lambda: not ffmpeg_pids(stream.public_id), 10, "the relay's ffmpeg to exit")


def test_dropped_webrtc_session_reconnects(
    studio, double, context: BrowserContext, db, make_user, make_stream
):
    """When the server drops the WebRTC session mid-broadcast, the page
    says it is reconnecting and publishes again over WHIP by itself."""
    owner = make_user()
    stream = make_stream(owner)
    golive = open_go_live(context, studio.url, owner.email, stream.public_id)
    golive.go_live_button.click()
    expect(golive.status).to_have_text("LIVE", timeout=15_000)
    first = double.sessions[-1]
    wait_until(lambda: first.frames["video"] > 0, 20, "frames of the first session")

    double.kick(first)
    expect(golive.message).to_contain_text("Reconnecting", timeout=15_000)
    expect(golive.message).to_have_text("Reconnected.", timeout=20_000)
    expect(golive.path).to_have_attribute("data-path", "webrtc")
    expect(golive.status).to_have_text("LIVE")
    second = double.sessions[-1]
    assert second is not first and second.stream == stream.public_id
    wait_until(lambda: second.frames["video"] > 0, 20, "frames of the new session")

    golive.stop()
    wait_until(lambda: second.token in double.deletes, 10, "DELETE of the new session")
    expect(golive.status).to_have_text("ended")
    assert [b.protocol for b in broadcasts(db, stream)] == ["webrtc", "webrtc"]


def test_switching_source_while_live_keeps_the_whip_session(
    studio, double, context: BrowserContext, db, make_user, make_stream
):
    """Switching to a screen share while live replaces the tracks of the WHIP
    session: no new session, frames keep arriving, one broadcast."""
    owner = make_user()
    stream = make_stream(owner)
    golive = open_go_live(context, studio.url, owner.email, stream.public_id)
    golive.go_live_button.click()
    expect(golive.status).to_have_text("LIVE", timeout=15_000)
    sessions = len(double.sessions)
    session = double.sessions[-1]
    wait_until(lambda: session.frames["video"] > 0, 20, "frames from the camera")

    golive.page.get_by_role("radio", name="Screen share").check()
    expect(golive.message).to_have_text("Now sharing your screen, still live.")
    before = session.frames["video"]
    wait_until(lambda: session.frames["video"] > before + 30, 20, "frames after the switch")
    assert len(double.sessions) == sessions and not session.deleted
    assert [b.protocol for b in broadcasts(db, stream)] == ["webrtc"]
    golive.stop()
    expect(golive.status).to_have_text("ended")
