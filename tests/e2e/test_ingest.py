"""Publishing into nginx-rtmp through the studio's hooks, with real ffmpeg."""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET

import requests

from tests.polling import poll


def _publishing(studio_stack, public_id: str) -> bool:
    reply = requests.get(f"{studio_stack.control_url}/stat", timeout=10)
    assert reply.status_code == 200
    for stream in ET.fromstring(reply.content).iter("stream"):  # noqa: S314 (our own nginx)
        if stream.findtext("name") == public_id and stream.find("publishing") is not None:
            return True
    return False


def test_wrong_key_is_refused_and_changes_nothing(studio_stack, ffmpeg_publisher):
    """A publisher with a wrong key is refused: ffmpeg exits non-zero, the
    stream stays `created` with no broadcast."""
    email = studio_stack.create_user()
    stream = studio_stack.create_stream(email)
    url = f"{studio_stack.rtmp_url}/{stream.public_id}?secret=not-the-key"

    process = ffmpeg_publisher.start(url)

    assert process.wait(timeout=15) != 0
    row = studio_stack.stream_row(stream.public_id)
    assert row["status"] == "created"
    assert row["broadcasts"] == []
    assert not _publishing(studio_stack, stream.public_id)


def test_disabling_a_live_stream_drops_the_publisher(studio_stack, ffmpeg_publisher):
    """Disabling a live stream on the creator page drops its publisher at
    once: ffmpeg exits and nginx no longer lists a publisher."""
    email = studio_stack.create_user()
    stream = studio_stack.create_stream(email)
    session = studio_stack.login(email)
    process = ffmpeg_publisher.start(stream.publish_url)
    assert poll(lambda: studio_stack.stream_row(stream.public_id)["status"] == "live", 15)
    assert poll(lambda: _publishing(studio_stack, stream.public_id), 10)
    page = session.get(f"{studio_stack.base_url}/streams/{stream.public_id}", timeout=10)
    token = _csrf(page.text)

    started = time.monotonic()
    reply = session.post(
        f"{studio_stack.base_url}/streams/{stream.public_id}/disable",
        data={"csrf_token": token, "disabled": "1"},
        timeout=10,
        allow_redirects=False,
    )
    assert reply.status_code in (302, 303), reply.text[:300]
    dropped = poll(lambda: not _publishing(studio_stack, stream.public_id), 5, 0.01)
    dropped_after = time.monotonic() - started
    exited = poll(lambda: process.poll() is not None, 5, 0.01)
    exited_after = time.monotonic() - started
    print(f"publisher dropped after {dropped_after:.3f}s, ffmpeg exited after {exited_after:.3f}s")

    assert dropped, "nginx still lists a publisher"
    assert exited, "ffmpeg still running"
    # The engine's unpublish callback follows the drop; on a busy machine it
    # may land a moment after ffmpeg has exited.
    assert poll(lambda: studio_stack.stream_row(stream.public_id)["status"] == "ended", 15)
    assert studio_stack.stream_row(stream.public_id)["disabled"] is True


def _csrf(html: str) -> str:
    from tests.conftest import csrf_token

    return csrf_token(html)
