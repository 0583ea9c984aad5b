"""Page objects for the browser tests: what a creator or a viewer sees and
does, located by role, label or data-testid."""

from __future__ import annotations

import re

from playwright.sync_api import Locator, Page, expect

MASK = "••••••••••••••••"


class RegisterPage:
    def __init__(self, page: Page, base_url: str):
        self.page = page
        self.base_url = base_url

    def open(self) -> RegisterPage:
        self.page.goto(f"{self.base_url}/register")
        return self

    def register(self, email: str, password: str) -> None:
        self.page.get_by_label("Email").fill(email)
        self.page.get_by_label("Password").fill(password)
        self.page.get_by_role("button", name="Register").click()


class LoginPage:
    def __init__(self, page: Page, base_url: str):
        self.page = page
        self.base_url = base_url

    def open(self) -> LoginPage:
        self.page.goto(f"{self.base_url}/login")
        return self

    def log_in(self, email: str, password: str) -> None:
        self.page.get_by_label("Email").fill(email)
        self.page.get_by_label("Password").fill(password)
        self.page.get_by_role("button", name="Log in").click()


class TopBar:
    def __init__(self, page: Page):
        self.page = page

    def log_out(self) -> None:
        self.page.get_by_role("button", name="Log out").click()

    def signed_in_as(self, email: str) -> Locator:
        return self.page.locator(".who", has_text=email)


class StreamsPage:
    """The creator's list of streams, with the create form."""

    def __init__(self, page: Page):
        self.page = page

    def create(self, title: str) -> StreamPage:
        self.page.get_by_label("Title").fill(title)
        self.page.get_by_role("button", name="Create stream").click()
        expect(self.page.get_by_role("heading", name=title)).to_be_visible()
        return StreamPage(self.page)


class StreamPage:
    """A stream's page in the studio: settings, key, live status."""

    def __init__(self, page: Page):
        self.page = page
        self.status = page.get_by_test_id("stream-status")
        self.elapsed = page.get_by_test_id("elapsed")
        self.ingest_health = page.get_by_test_id("ingest-health")
        self.key = page.get_by_test_id("stream-key")
        self.server = page.get_by_test_id("rtmp-server")
        self.broadcasts = page.get_by_test_id("broadcasts")
        self.viewers = page.get_by_test_id("viewer-count")

    @property
    def public_id(self) -> str:
        match = re.search(r"/streams/([a-z0-9]+)", self.page.url)
        assert match, self.page.url
        return match.group(1)

    def open(self, base_url: str, public_id: str) -> StreamPage:
        self.page.goto(f"{base_url}/streams/{public_id}")
        return self

    def reveal_key(self) -> str:
        """Reveal the key and return it as shown."""
        self.page.get_by_test_id("reveal-key").click()
        expect(self.key).not_to_have_text(MASK)
        return self.key.inner_text().strip()

    def copy_key(self) -> None:
        button = self.page.get_by_test_id("copy-stream-key")
        button.click()
        expect(button).to_have_text("Copied")

    def rotate_key(self) -> None:
        self.page.get_by_test_id("rotate-key").click()
        notice = self.page.get_by_role("status").filter(has_text="New stream key issued")
        expect(notice).to_be_visible()

    def set_reconnect_window(self, seconds: int) -> None:
        self.page.get_by_label("Reconnect window (seconds)").fill(str(seconds))
        self.page.get_by_test_id("save-reconnect-window").click()
        expect(
            self.page.get_by_role("status").filter(has_text="Reconnect window saved")
        ).to_be_visible()

    @property
    def confirm_dialog(self) -> Locator:
        return self.page.get_by_role("dialog")

    def replay_links(self) -> Locator:
        return self.broadcasts.get_by_test_id("replay-link")


class WatchPage:
    """The public watch page of a stream."""

    def __init__(self, page: Page):
        self.page = page
        self.status = page.get_by_test_id("watch-status")
        self.offline_card = page.get_by_test_id("offline-card")
        self.ended_card = page.get_by_test_id("ended-card")
        self.video = page.get_by_test_id("video")
        self.latest_replay = page.get_by_test_id("watch-latest-replay")
        self.replays = page.get_by_test_id("replays")
        self.viewers = page.get_by_test_id("viewer-count")
        self.playback_mode = page.get_by_test_id("playback-mode")
        self.playback_switch = page.get_by_test_id("playback-switch")
        self.playback_note = page.get_by_test_id("playback-note")

    def open(self, base_url: str, public_id: str) -> WatchPage:
        self.page.goto(f"{base_url}/watch/{public_id}")
        return self

    def mode(self) -> str:
        """What the player plays: "none", "live" or "replay"."""
        return self.page.locator("#player").get_attribute("data-mode") or ""

    def wait_until_playing(self, past_seconds: float, timeout_ms: float = 30_000) -> None:
        """Wait until the video's clock has advanced `past_seconds` beyond where
        it stood when called, with frames decoded."""
        start = self.video.evaluate("video => video.currentTime")
        self.page.wait_for_function(
            """([start, past]) => {
                const video = document.getElementById("video");
                const quality = video.getVideoPlaybackQuality();
                return !video.paused && video.currentTime > start + past
                    && quality.totalVideoFrames - quality.droppedVideoFrames > 0;
            }""",
            arg=[start, past_seconds],
            timeout=timeout_ms,
        )

    def source(self) -> str:
        """Where the video's picture comes from: "webrtc" (a MediaStream),
        "hls" (hls.js's MediaSource) or "" (nothing)."""
        return self.video.evaluate(
            "video => video.srcObject instanceof MediaStream ? 'webrtc'"
            " : (video.currentSrc.startsWith('blob:') ? 'hls' : '')"
        )

    def decoded_frames(self) -> int:
        return self.video.evaluate(
            "video => { const q = video.getVideoPlaybackQuality();"
            " return q.totalVideoFrames - q.droppedVideoFrames; }"
        )

    def record_ended(self) -> None:
        """Start noting the video's `ended` event (call before playing)."""
        self.video.evaluate(
            "video => { video.dataset.ended = 'false';"
            " video.addEventListener('ended', () => { video.dataset.ended = 'true'; }); }"
        )

    def wait_until_ended(self, timeout_ms: float = 60_000) -> None:
        expect(self.video).to_have_attribute("data-ended", "true", timeout=timeout_ms)


class HomePage:
    """The visitors' home page: live now and recent replays."""

    def __init__(self, page: Page):
        self.page = page
        self.live_now = page.get_by_test_id("live-now")
        self.replays = page.get_by_test_id("recent-replays")

    def open(self, base_url: str) -> HomePage:
        self.page.goto(f"{base_url}/")
        return self

    def live_tile(self, title: str) -> Locator:
        return self.live_now.get_by_test_id("live-tile").filter(has_text=title)

    def live_item(self, title: str) -> Locator:
        """The whole entry of a live stream: its tile, status, audience and start."""
        tile = self.page.get_by_test_id("live-tile").filter(has_text=title)
        return self.live_now.locator("li").filter(has=tile)


def wait_until_video_plays(scope, past_seconds: float, timeout_ms: float = 45_000) -> None:
    """Wait until the `#video` of a page or frame has played `past_seconds`
    with frames decoded."""
    scope.wait_for_function(
        """(past) => {
            const video = document.getElementById("video");
            if (!video) return false;
            const quality = video.getVideoPlaybackQuality();
            return !video.paused && video.currentTime > past
                && quality.totalVideoFrames - quality.droppedVideoFrames > 0;
        }""",
        arg=past_seconds,
        timeout=timeout_ms,
    )


class ChatPanel:
    """The live chat of a watch, stream or go-live page (or a replay's chat)."""

    def __init__(self, page: Page):
        self.page = page
        self.panel = page.get_by_test_id("chat")
        self.messages = self.panel.get_by_test_id("chat-message")
        self.state = self.panel.get_by_test_id("chat-state")
        self.error = self.panel.get_by_test_id("chat-error")
        self.input = self.panel.get_by_label("Chat message", exact=True)
        self.display_name = self.panel.get_by_label("Display name", exact=True)
        self.send_button = self.panel.get_by_role("button", name="Send")
        self.sign_in = self.panel.get_by_test_id("chat-sign-in")
        self.announcer = self.panel.get_by_test_id("chat-announcer")
        self.moderation = self.panel.get_by_test_id("chat-moderation")

    def empty_note(self) -> str:
        """What an empty message list says (a CSS note, not a message)."""
        return self.panel.get_by_test_id("chat-messages").evaluate(
            "list => getComputedStyle(list, '::before').content"
        )

    def wait_until_ready(self) -> ChatPanel:
        """The history has arrived (the socket is open)."""
        expect(self.panel).to_have_attribute("data-ready", "true")
        return self

    def write(self, text: str, name: str | None = None) -> None:
        """Type a message (and a display name when asked) and send it."""
        if name is not None and self.display_name.is_visible():
            self.display_name.fill(name)
        self.input.fill(text)
        self.send_button.click()

    def message(self, text: str) -> Locator:
        return self.messages.filter(has_text=text)

    def moderate(self, text: str, action: str) -> None:
        """Delete / Time out / Ban on the message containing `text`."""
        self.message(text).get_by_role("button", name=re.compile(f"^{action} ")).click()

    def open_moderation(self) -> Locator:
        """The moderation and chat settings box, opened."""
        expect(self.moderation).to_be_visible()
        if self.moderation.get_attribute("open") is None:
            self.moderation.get_by_text("Moderation and chat settings").click()
        return self.moderation

    def set_settings(self, mode: str | None = None, slow_mode: int | None = None) -> None:
        self.open_moderation()
        if mode is not None:
            self.moderation.get_by_label("Who can write").select_option(mode)
        if slow_mode is not None:
            self.moderation.get_by_label("Slow mode").fill(str(slow_mode))
        self.moderation.get_by_role("button", name="Save chat settings").click()
