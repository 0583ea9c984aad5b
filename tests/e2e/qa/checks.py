"""Waiting on the target with answers a person can read: when a wait runs
out, the message says what was awaited, what the target showed instead and
what usually causes it, instead of a bare timeout."""

from __future__ import annotations

from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import Page

from tests.e2e.pages import wait_until_video_plays
from tests.e2e.qa.target import Creator, seconds
from tests.polling import poll

HINTS = {
    "live": (
        "the media server did not report the publish to the studio, or the studio "
        "refused it: check the engine's hook URL and token (STUDIO_HOOK_TOKEN) and "
        "that the publisher reached the ingest address"
    ),
    "ended": "the media server did not report the end of the publish (unpublish callback)",
}


def wait_for_status(creator: Creator, stream_id: str, status: str, within: float) -> dict:
    """The stream object once the API says `status`; fails with the last
    status seen and the usual cause."""
    seen: list[str] = []

    def reached():
        stream = creator.stream(stream_id)
        seen.append(stream["status"])
        return stream if stream["status"] == status else None

    stream = poll(reached, timeout=seconds(within), interval=0.5)
    if not stream:
        raise AssertionError(
            f"stream {stream_id} did not become {status!r} within {seconds(within):.0f} s "
            f"(last status {seen[-1]!r}): {HINTS.get(status, '')}"
        )
    return stream


def wait_for_playback(page: Page, past_seconds: float, within: float, what: str) -> None:
    """Wait until `#video` has played `past_seconds` with frames decoded;
    on timeout, says how far the player got."""
    try:
        wait_until_video_plays(page, past_seconds, timeout_ms=seconds(within) * 1000)
    except PlaywrightError:
        state = page.evaluate(
            """() => {
                const video = document.getElementById("video");
                const player = document.getElementById("player");
                if (!video) return {video: "none"};
                return {currentTime: video.currentTime, readyState: video.readyState,
                        paused: video.paused, error: video.error && video.error.message,
                        mode: player && player.dataset.mode};
            }"""
        )
        raise AssertionError(
            f"{what}: the player did not play {past_seconds} s within "
            f"{seconds(within):.0f} s (player state {state}); no segment reached the "
            "CDN edge or the playlist names one it cannot fetch: check the upload "
            "workers and the bucket"
        ) from None


def wait_for_exit(process, within: float, what: str) -> int:
    """The publisher's exit code once it has been cut off."""
    if poll(lambda: process.poll() is not None, timeout=seconds(within), interval=0.2) is not True:
        raise AssertionError(f"{what}: the publisher was still connected after {within} s")
    return process.returncode
