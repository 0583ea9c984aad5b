"""The websocket ingest `/ws/ingest/<id>` against a real gunicorn, nginx-rtmp
and ffmpeg (no browser): who may open it, one ingest per stream, and
ffmpeg's lifetime following the socket."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from pathlib import Path

import pytest
from simple_websocket import ConnectionClosed, ConnectionError

from tests.conftest import VAR
from tests.e2e.golive.harness import (
    camera_recording,
    cookie_header,
    ffmpeg_pids,
    login,
    run_studio,
)
from tests.live.conftest import Client
from tests.polling import wait_until

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def studio(app, services):
    with run_studio(VAR / "golive", services, app.config["HOOK_TOKEN"]) as running:
        yield running


@pytest.fixture(scope="module")
def recording(tmp_path_factory) -> bytes:
    """20 s of H.264 + Opus in Matroska, as Chromium's MediaRecorder sends."""
    return camera_recording(tmp_path_factory.mktemp("media") / "camera.mkv")


def connect(studio, public_id: str, session=None, origin: str | None = None) -> Client:
    headers = {}
    if session is not None:
        # Same user agent as the login: "strong" session protection checks it.
        headers["Cookie"] = cookie_header(session)
        headers["User-Agent"] = session.headers["User-Agent"]
    if origin is not None:
        headers["Origin"] = origin
    url = studio.url.replace("http://", "ws://") + f"/ws/ingest/{public_id}"
    return Client.connect(url, headers=headers)


def next_message(ws: Client, timeout: float = 10.0) -> dict:
    data = ws.receive(timeout=timeout)
    assert data is not None, "no message from the server"
    return json.loads(data)


def closed_with(ws: Client, timeout: float = 15.0) -> tuple[int, str]:
    """Wait for the server to close the socket; returns (code, reason)."""

    def closed() -> tuple[int, str] | None:
        try:
            ws.receive(timeout=0.5)
        except ConnectionClosed as closed:
            return closed.reason, closed.message or ""
        return None

    return wait_until(closed, timeout, "the server to close the socket", interval=0)


def stream_status(db, stream) -> str:
    db.session.expire_all()
    db.session.refresh(stream)
    return stream.status


def send_paced(ws: Client, data: bytes, seconds: float, chunk_seconds: float = 0.25) -> None:
    """Send `data` as if it were recorded over `seconds`, in timesliced chunks."""
    count = max(1, int(seconds / chunk_seconds))
    size = len(data) // count + 1
    for start in range(0, len(data), size):
        ws.send(data[start : start + size])
        time.sleep(chunk_seconds)


def test_anonymous_is_refused_before_the_upgrade(studio, make_stream):
    """No session cookie: the handshake is answered 401, no socket opens."""
    stream = make_stream()
    with pytest.raises(ConnectionError) as refused:
        connect(studio, stream.public_id)
    assert refused.value.status_code == 401


def test_another_user_gets_404(studio, make_user, make_stream):
    """Someone else's stream looks like no stream at all."""
    stream = make_stream()
    intruder = make_user()
    with pytest.raises(ConnectionError) as refused:
        connect(studio, stream.public_id, login(studio.url, intruder.email))
    assert refused.value.status_code == 404


def test_another_site_cannot_borrow_the_cookie(studio, make_user, make_stream):
    """A page on another origin cannot open the owner's ingest."""
    owner = make_user()
    stream = make_stream(owner)
    with pytest.raises(ConnectionError) as refused:
        connect(studio, stream.public_id, login(studio.url, owner.email), "https://evil.test")
    assert refused.value.status_code == 403


def test_owner_goes_live_and_socket_close_ends_the_broadcast(
    studio, db, make_user, make_stream, recording
):
    """Media sent by the owner goes live through nginx-rtmp as a websocket
    broadcast; closing the socket ends it and leaves no ffmpeg behind."""
    owner = make_user()
    stream = make_stream(owner)
    ws = connect(studio, stream.public_id, login(studio.url, owner.email))
    assert next_message(ws) == {"type": "ready"}
    assert len(ffmpeg_pids(stream.public_id)) == 1
    send_paced(ws, recording[: len(recording) // 4], seconds=2)
    wait_until(lambda: stream_status(db, stream) == "live", what="status live")
    assert stream.broadcasts[0].protocol == "websocket"
    ws.close()
    wait_until(lambda: stream_status(db, stream) == "ended", what="status ended")
    wait_until(lambda: not ffmpeg_pids(stream.public_id), what="ffmpeg to exit")


def test_second_ingest_for_one_stream_is_refused(studio, make_user, make_stream, recording):
    """While one socket ingests a stream, a second one (another tab) is
    closed at once with a reason the page can show; the first carries on."""
    owner = make_user()
    stream = make_stream(owner)
    session = login(studio.url, owner.email)
    first = connect(studio, stream.public_id, session)
    assert next_message(first) == {"type": "ready"}
    first.send(recording[:20000])
    second = connect(studio, stream.public_id, session)
    code, reason = closed_with(second)
    assert code == 4409
    assert "already" in reason
    first.send(recording[20000:40000])
    assert first.connected
    first.close()
    wait_until(lambda: not ffmpeg_pids(stream.public_id), what="ffmpeg to exit")


def test_refused_publish_closes_the_socket_with_a_reason(
    studio, db, make_user, make_stream, recording
):
    """When the engine refuses the publish (the stream was disabled after the
    socket opened), ffmpeg exits and the page is told why."""
    owner = make_user()
    stream = make_stream(owner)
    ws = connect(studio, stream.public_id, login(studio.url, owner.email))
    assert next_message(ws) == {"type": "ready"}
    stream.disabled = True
    db.session.commit()
    with contextlib.suppress(ConnectionClosed):
        send_paced(ws, recording[: len(recording) // 4], seconds=2)
    code, reason = closed_with(ws)
    assert code == 4403
    assert "refused" in reason
    assert stream_status(db, stream) == "created"
    wait_until(lambda: not ffmpeg_pids(stream.public_id), what="ffmpeg to exit")
    log = studio.log_text()
    assert f"failed stream={stream.public_id}" in log  # with ffmpeg's stderr tail
    assert stream.stream_key not in log  # ...which never shows the key


def test_ffmpeg_does_not_outlive_a_killed_web_worker(studio, db, make_user, make_stream, recording):
    """A web worker killed mid-broadcast (OOM, SIGKILL) leaves no orphan:
    ffmpeg reads end-of-file on stdin, exits, and the broadcast ends."""
    owner = make_user()
    stream = make_stream(owner)
    ws = connect(studio, stream.public_id, login(studio.url, owner.email))
    assert next_message(ws) == {"type": "ready"}
    send_paced(ws, recording[: len(recording) // 4], seconds=2)
    wait_until(lambda: stream_status(db, stream) == "live", what="status live")
    (relay,) = ffmpeg_pids(stream.public_id)
    worker = int(Path(f"/proc/{relay}/stat").read_text().rsplit(")", 1)[1].split()[1])
    os.kill(worker, signal.SIGKILL)
    wait_until(lambda: not ffmpeg_pids(stream.public_id), what="ffmpeg to exit")
    wait_until(lambda: stream_status(db, stream) == "ended", what="status ended")


def test_fragmented_mp4_goes_live_too(studio, db, make_user, make_stream, tmp_path):
    """Browsers that record MP4 rather than Matroska say so (?container=mp4)."""
    owner = make_user()
    stream = make_stream(owner)
    mp4 = camera_recording(tmp_path / "camera.mp4", seconds=6, container="mp4")
    ws = connect(studio, stream.public_id + "?container=mp4", login(studio.url, owner.email))
    assert next_message(ws) == {"type": "ready"}
    send_paced(ws, mp4, seconds=3)
    wait_until(lambda: stream_status(db, stream) == "live", what="status live")
    ws.close()
    wait_until(lambda: stream_status(db, stream) == "ended", what="status ended")


def test_unknown_container_is_refused(studio, make_user, make_stream):
    owner = make_user()
    stream = make_stream(owner)
    ws = connect(studio, stream.public_id + "?container=avi", login(studio.url, owner.email))
    code, reason = closed_with(ws)
    assert code == 4400
    assert "matroska or mp4" in reason
    assert not ffmpeg_pids(stream.public_id)


@pytest.mark.parametrize(
    ("message", "says"),
    [
        ('{"type": "stop\\u0000"}', "NUL"),
        ('{"type": "\x00"}', "NUL"),
        ('{"type": "\\ud800"}', "surrogate"),
        ("[" * 5000 + "]" * 5000, "nested deeper"),
    ],
    ids=["escaped NUL", "raw NUL", "lone surrogate", "deep nesting"],
)
def test_bad_text_message_closes_with_a_reason(studio, make_user, make_stream, message, says):
    """A text message no surface accepts closes the ingest with 4400 and a
    sentence saying what was wrong; ffmpeg is not left behind."""
    owner = make_user()
    stream = make_stream(owner)
    ws = connect(studio, stream.public_id, login(studio.url, owner.email))
    assert next_message(ws) == {"type": "ready"}
    ws.send(message)
    code, reason = closed_with(ws)
    assert code == 4400
    assert reason.startswith("Message refused:") and says in reason
    wait_until(lambda: not ffmpeg_pids(stream.public_id), what="ffmpeg to exit")
