"""The reconnect window with real nginx-rtmp, ffmpeg, the workers and the
bucket: a publisher back in time continues the same broadcast (one replay),
one too late starts a new one, window 0 behaves as before, and a key rotation
in the window ends the broadcast for good."""

from __future__ import annotations

import signal
import time

from sqlalchemy import select

from studio.extensions import db
from studio.models import Stream, utcnow
from studio.storage import layout
from tests.conftest import csrf_token
from tests.polling import wait_until
from workers import reconcile as reconciler


def stop(process) -> None:
    """End ffmpeg's stream cleanly (as OBS's Stop, or a dropped Wi-Fi's unpublish)."""
    process.send_signal(signal.SIGINT)
    process.wait(timeout=15)


def row(studio_stack, stream) -> dict:
    return studio_stack.stream_row(stream.public_id)


def wait_for_status(studio_stack, stream, status: str, timeout: float = 20) -> dict:
    return wait_until(
        lambda: (r := row(studio_stack, stream))["status"] == status and r,
        timeout,
        f"status {status}",
    )


def wait_for_segments(studio_stack, stream, count: int, timeout: float = 30) -> dict:
    """The newest broadcast has at least `count` segments in the bucket."""
    return wait_until(
        lambda: (
            (r := row(studio_stack, stream))["broadcasts"]
            and len(r["broadcasts"][-1]["segments"]) >= count
            and r
        ),
        timeout,
        f"{count} segments",
    )


def post(studio_stack, email: str, stream, action: str) -> None:
    """A creator's button on the stream page (rotate-key, end, ...)."""
    session = studio_stack.login(email)
    page = session.get(f"{studio_stack.base_url}/streams/{stream.public_id}", timeout=10)
    reply = session.post(
        f"{studio_stack.base_url}/streams/{stream.public_id}/{action}",
        data={"csrf_token": csrf_token(page.text)},
        timeout=10,
        allow_redirects=False,
    )
    assert reply.status_code == 302, reply.text[:300]


def bucket_text(studio_stack, name: str) -> str:
    status, _, body = studio_stack.bucket_get(name)
    assert status == 200, name
    return body.decode()


def test_a_publisher_back_within_the_window_continues_the_broadcast(studio_stack, ffmpeg_publisher):
    """Publish, stop, publish again within the window: one broadcast all
    along (live → reconnecting → live), the live playlist never ended, and
    one replay with every segment and a discontinuity where the second
    publisher's timestamps begin."""
    email = studio_stack.create_user()
    stream = studio_stack.create_stream(email, "Reconnect", reconnect_window=120)
    first = ffmpeg_publisher.start(stream.publish_url)
    wait_for_status(studio_stack, stream, "live")
    before = wait_for_segments(studio_stack, stream, 2)
    broadcast_id = before["broadcasts"][0]["id"]

    stop(first)
    waiting = wait_for_status(studio_stack, stream, "reconnecting")
    assert waiting["reconnect_deadline"] is not None
    assert [b["ended_at"] for b in waiting["broadcasts"]] == [None]
    live_name = layout.live_playlist(stream.public_id)
    assert "#EXT-X-ENDLIST" not in bucket_text(studio_stack, live_name)
    dropped_at = len(row(studio_stack, stream)["broadcasts"][0]["segments"])

    second = ffmpeg_publisher.start(stream.publish_url)
    back = wait_for_status(studio_stack, stream, "live")
    assert [b["id"] for b in back["broadcasts"]] == [broadcast_id]
    after = wait_for_segments(studio_stack, stream, dropped_at + 2)
    assert [b["id"] for b in after["broadcasts"]] == [broadcast_id]
    live = bucket_text(studio_stack, live_name)
    assert "#EXT-X-ENDLIST" not in live and "#EXT-X-DISCONTINUITY" in live

    stop(second)
    wait_for_status(studio_stack, stream, "reconnecting")
    post(studio_stack, email, stream, "end")
    done = wait_until(
        lambda: (r := row(studio_stack, stream))["broadcasts"][0]["replay_ready_at"] and r,
        60,
        "the replay",
    )
    (broadcast,) = done["broadcasts"]
    assert broadcast["end_reason"] == "stopped"
    numbers = [sequence for sequence, _, _ in broadcast["segments"]]
    assert numbers == list(range(numbers[0], numbers[0] + len(numbers)))  # none lost
    replay = bucket_text(studio_stack, layout.replay_playlist(stream.public_id, broadcast_id))
    listed = [line for line in replay.splitlines() if line.endswith(".ts")]
    assert listed == [f"{n}.ts" for n in numbers]
    lines = replay.splitlines()
    assert lines.count("#EXT-X-DISCONTINUITY") == 1
    assert replay.rstrip().endswith("#EXT-X-ENDLIST")
    # The discontinuity sits before the returning publisher's first segment.
    cut = lines.index("#EXT-X-DISCONTINUITY")
    resumed = next(line for line in lines[cut:] if line.endswith(".ts"))
    assert int(resumed.removesuffix(".ts")) > numbers[0] + 1


def test_after_the_window_the_broadcast_ends_and_a_new_one_starts(studio_stack, ffmpeg_publisher):
    """No publisher by the deadline: the reconciler's pass ends the broadcast
    (reason reconnect_timeout) and its replay is written; the next publish
    is a new broadcast."""
    email = studio_stack.create_user()
    stream = studio_stack.create_stream(email, "Too late", reconnect_window=2)
    first = ffmpeg_publisher.start(stream.publish_url)
    wait_for_status(studio_stack, stream, "live")
    wait_for_segments(studio_stack, stream, 1)
    stop(first)
    deadline = wait_for_status(studio_stack, stream, "reconnecting")["reconnect_deadline"]
    wait_until(lambda: utcnow() > deadline, 10, "the deadline")

    with studio_stack.app.app_context():
        report = reconciler.reconcile(now=time.time())
    assert stream.public_id in report.reconnect_timeouts
    ended = wait_until(
        lambda: (r := row(studio_stack, stream))["broadcasts"][0]["replay_ready_at"] and r,
        60,
        "the replay",
    )
    assert ended["status"] == "ended"
    assert ended["broadcasts"][0]["end_reason"] == "reconnect_timeout"

    ffmpeg_publisher.start(stream.publish_url)
    again = wait_for_status(studio_stack, stream, "live")
    assert len(again["broadcasts"]) == 2
    assert again["broadcasts"][1]["ended_at"] is None


def test_window_zero_ends_the_broadcast_at_the_unpublish(studio_stack, ffmpeg_publisher):
    """Window 0: stopping ends the broadcast at once, as before windows existed."""
    email = studio_stack.create_user()
    stream = studio_stack.create_stream(email, "No window", reconnect_window=0)
    first = ffmpeg_publisher.start(stream.publish_url)
    wait_for_status(studio_stack, stream, "live")
    stop(first)
    ended = wait_for_status(studio_stack, stream, "ended")
    assert ended["broadcasts"][0]["end_reason"] == "unpublish"
    ffmpeg_publisher.start(stream.publish_url)
    assert len(wait_for_status(studio_stack, stream, "live")["broadcasts"]) == 2


def test_rotating_the_key_in_the_window_ends_the_broadcast(studio_stack, ffmpeg_publisher):
    """A key rotation while reconnecting ends the broadcast at once; the old
    key is refused; the new key starts a new broadcast."""
    email = studio_stack.create_user()
    stream = studio_stack.create_stream(email, "Rotated", reconnect_window=120)
    first = ffmpeg_publisher.start(stream.publish_url)
    wait_for_status(studio_stack, stream, "live")
    stop(first)
    wait_for_status(studio_stack, stream, "reconnecting")

    post(studio_stack, email, stream, "rotate-key")
    ended = row(studio_stack, stream)
    assert ended["status"] == "ended"
    assert ended["broadcasts"][0]["end_reason"] == "key_rotated"
    refused = ffmpeg_publisher.start(stream.publish_url)  # the old key
    assert refused.wait(timeout=15) != 0
    assert len(row(studio_stack, stream)["broadcasts"]) == 1

    with studio_stack.app.app_context():
        key = db.session.scalar(
            select(Stream.stream_key).where(Stream.public_id == stream.public_id)
        )
        db.session.remove()
    ffmpeg_publisher.start(f"{studio_stack.rtmp_url}/{stream.public_id}?secret={key}")
    again = wait_for_status(studio_stack, stream, "live")
    assert len(again["broadcasts"]) == 2
