"""The ingest socket when the media server misbehaves: one that stops taking
video must not make the studio buffer without bound (the socket is dropped
with a reason once the bounded buffer towards ffmpeg is full, and ffmpeg is
killed and reaped); one that cannot be reached is reported as such."""

from __future__ import annotations

import contextlib
import socket
import threading

import pytest
from simple_websocket import ConnectionClosed

from devtools.process import free_port
from tests.conftest import VAR
from tests.e2e.golive.harness import camera_recording, ffmpeg_pids, login, run_studio
from tests.live.test_ingest_socket import closed_with, connect, next_message
from tests.polling import wait_until

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def stalled_engine():
    """An "RTMP server" that accepts connections and never reads or answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    held: list[socket.socket] = []
    threading.Thread(target=lambda: held.append(server.accept()[0]), daemon=True).start()
    yield f"rtmp://127.0.0.1:{server.getsockname()[1]}/live"
    for connection in held:
        connection.close()
    server.close()


@pytest.fixture(scope="module")
def recording(tmp_path_factory) -> bytes:
    return camera_recording(tmp_path_factory.mktemp("media") / "camera.mkv", seconds=5)


@pytest.fixture(scope="module")
def studio(app, services, stalled_engine):
    env = {"STUDIO_INGEST_RTMP_URL": stalled_engine}
    with run_studio(VAR / "golive-stall", services, app.config["HOOK_TOKEN"], env) as running:
        yield running


def test_stalled_engine_drops_the_socket_instead_of_buffering(
    studio, make_user, make_stream, recording
):
    """The client keeps sending while ffmpeg cannot publish: the socket is
    closed (1013, with a reason) long before 64 MB went in."""
    owner = make_user()
    stream = make_stream(owner)
    ws = connect(studio, stream.public_id, login(studio.url, owner.email))
    assert next_message(ws) == {"type": "ready"}
    sent = 0
    chunk = (recording * 4)[: 256 * 1024]
    try:
        while sent < 64 * 1024 * 1024:  # far beyond the 8 MB the studio may hold
            ws.send(chunk)
            sent += len(chunk)
    except (ConnectionClosed, OSError):
        pass  # closed by the server (OSError: the client's reader closed the socket first)
    code, reason = closed_with(ws)
    assert code == 1013
    assert "cannot forward" in reason
    # 8 MB in the relay's buffer plus what sockets and the pipe hold: bounded.
    assert sent < 32 * 1024 * 1024
    wait_until(lambda: not ffmpeg_pids(stream.public_id), what="ffmpeg to be killed")
    wait_until(lambda: f"failed stream={stream.public_id}" in studio.log_text(), what="the log")


@pytest.fixture(scope="module")
def unreachable_studio(app, services):
    env = {"STUDIO_INGEST_RTMP_URL": f"rtmp://127.0.0.1:{free_port()}/live"}
    var_dir = VAR / "golive-unreachable"
    with run_studio(var_dir, services, app.config["HOOK_TOKEN"], env) as running:
        yield running


def test_unreachable_engine_is_reported(unreachable_studio, make_user, make_stream, recording):
    """Nothing listens where ffmpeg publishes: the page is told the media
    server is unreachable (a code it retries), and ffmpeg is gone."""
    owner = make_user()
    stream = make_stream(owner)
    ws = connect(unreachable_studio, stream.public_id, login(unreachable_studio.url, owner.email))
    assert next_message(ws) == {"type": "ready"}
    with contextlib.suppress(ConnectionClosed, OSError):
        ws.send(recording[:200_000])
    code, reason = closed_with(ws)
    assert code == 4502
    assert reason == "The media server is unreachable."
    wait_until(lambda: not ffmpeg_pids(stream.public_id), what="ffmpeg to exit")
