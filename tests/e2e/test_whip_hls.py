"""A browser-fed (WHIP) broadcast as SRS 5 writes its HLS, watched from its
first segment.

The recording in `tests/fixtures/srs5/whip-hls/` (real segments and
every playlist version SRS 5 wrote, see its README) is replayed into the HLS
directory at the pace SRS wrote it: the open fragment as `.ts.tmp`, renamed
when the playlist that lists it appears, the playlist replaced atomically.
The publish and its end reach the studio as the stack's engine (nginx-rtmp)
reports them; the watcher, the RQ workers, fake-gcs-server and the nginx edge
are the real ones, and Chromium's hls.js plays the watch page.

What makes this HLS hard: ~4 s first segments, a discontinuity before almost
every segment, the resolution ramping 480x270 -> 640x360, and a segment
(the third) that starts without SPS/PPS.
"""

from __future__ import annotations

import os
import re
import statistics
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from playwright.sync_api import Page

from tests.e2e.pages import WatchPage
from tests.polling import wait_until
from tests.whip_hls import without_audio_samples

pytestmark = pytest.mark.e2e

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "srs5" / "whip-hls"
FIXTURE_STREAM = "whipfix"
PLAYLIST_FILE = re.compile(r"^playlist-\d+-t(?P<at>\d+\.\d+)\.m3u8$")
# SRS's first segment begins about this long after the WHIP POST (its first
# playlist appears at 8.44 s listing 3.951 s).
FIRST_MEDIA_AT = 8.44 - 3.951
# What "near live" means here: behind hls.js's live edge (the newest segment
# the edge serves) typically by at most this much, once playing (it was
# 10-12 s with a distance of 3 target durations).
MAX_BEHIND_EDGE = 8.0

# Counts every hls.js instance the page makes (each is a player (re)start)
# and every error it reports, without touching the player's code.
RECORD_HLS = """
(() => {
  window.__hlsErrors = [];
  window.__hlsInstances = [];
  let wrapped;
  Object.defineProperty(window, "Hls", {
    configurable: true,
    get() { return wrapped; },
    set(Hls) {
      wrapped = class extends Hls {
        constructor(config) {
          super(config);
          window.__hlsInstances.push(this);
          this.on(Hls.Events.ERROR, (_name, data) => {
            window.__hlsErrors.push({ type: data.type, details: data.details, fatal: data.fatal });
          });
        }
      };
    },
  });
})();
"""


@dataclass(frozen=True)
class Step:
    at: float  # seconds after the publish
    playlist: Path | None  # a playlist version to put in place
    completes: list[str]  # segment files closed at this moment
    opens: str | None  # the segment file SRS starts writing then


def timeline() -> list[Step]:
    """SRS's writes, in order, from the fixture's playlist versions."""
    steps: list[Step] = []
    written: set[str] = set()
    versions = sorted(
        (float(m.group("at")), path)
        for path in FIXTURES.iterdir()
        if (m := PLAYLIST_FILE.match(path.name))
    )
    for at, path in versions:
        listed = [line for line in path.read_text().splitlines() if line.endswith(".ts")]
        new = [name for name in listed if name not in written]
        written.update(new)
        following = f"{FIXTURE_STREAM}-{_number(listed[-1]) + 1}.ts"
        steps.append(Step(at, path, new, following))
    final_segment = f"{FIXTURE_STREAM}-{_number(steps[-1].opens) if steps else 0}.ts"
    # The final playlist (after the unpublish) closes the last fragment.
    final = FIXTURES / "whipfix-final.m3u8"
    steps.append(Step(versions[-1][0] + 1.5, final, [final_segment], None))
    return steps


def _number(name: str) -> int:
    return int(name.rsplit("-", 1)[1].split(".")[0])


class SrsReplay:
    """Writes the fixture into `hls_dir/live` as `public_id`, in real time."""

    def __init__(self, stack, public_id: str, stream_key: str, silent_first: bool = False):
        self.stack = stack
        self.silent_first = silent_first
        self.public_id = public_id
        self.stream_key = stream_key
        self.live = stack.hls_dir / "live"
        self.finished = threading.Event()
        self.failure: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.started_at = 0.0

    def start(self) -> None:
        self.live.mkdir(parents=True, exist_ok=True)
        self._hook("publish")
        self.started_at = time.monotonic()
        # SRS opens the first fragment as soon as media flows.
        self._open(f"{FIXTURE_STREAM}-0.ts")
        self.thread.start()

    def _run(self) -> None:
        try:
            steps = timeline()
            for step in steps[:-1]:
                self._at(step.at)
                self._apply(step)
            self._at(steps[-1].at)
            self._hook("publish_done")
            self._apply(steps[-1])
        except BaseException as exc:  # reported by the test
            self.failure = exc
        finally:
            self.finished.set()

    def _at(self, seconds: float) -> None:
        delay = self.started_at + seconds - time.monotonic()
        if delay > 0:
            time.sleep(delay)

    def _apply(self, step: Step) -> None:
        for name in step.completes:
            tmp = self._path(name).with_name(self._path(name).name + ".tmp")
            if not tmp.exists():
                self._open(name)
            os.rename(tmp, self._path(name))
        if step.playlist is not None:
            text = step.playlist.read_text().replace(f"{FIXTURE_STREAM}-", f"{self.public_id}-")
            target = self.live / f"{self.public_id}.m3u8"
            temporary = target.with_name(target.name + ".writing")
            temporary.write_text(text)
            os.rename(temporary, target)
        if step.opens is not None and (FIXTURES / step.opens).exists():
            self._open(step.opens)

    def _open(self, name: str) -> None:
        """SRS writes the open fragment under `.ts.tmp`."""
        path = self._path(name)
        data = (FIXTURES / name).read_bytes()
        if self.silent_first and name == f"{FIXTURE_STREAM}-0.ts":
            data = without_audio_samples(data)
        path.with_name(path.name + ".tmp").write_bytes(data)

    def _path(self, name: str) -> Path:
        return self.live / name.replace(f"{FIXTURE_STREAM}-", f"{self.public_id}-")

    def _hook(self, call: str) -> None:
        form = {
            "call": call,
            "app": "live",
            "name": self.public_id,
            "clientid": "whip1",
            "addr": "127.0.0.1",
            "secret": self.stream_key,
        }
        reply = requests.post(self.stack.hook_url, data=form, timeout=10)
        assert reply.status_code == 200, reply.text

    def media_now(self) -> float:
        """Where the broadcast's own clock stands now (0 = first segment's start)."""
        return time.monotonic() - self.started_at - FIRST_MEDIA_AT


def hls_state(page: Page) -> dict:
    return page.evaluate(
        """() => {
            const video = document.getElementById("video");
            const hls = window.__hlsInstances[window.__hlsInstances.length - 1];
            return {
                instances: window.__hlsInstances.length,
                errors: window.__hlsErrors,
                latency: hls ? hls.latency : null,
                currentTime: video.currentTime,
                paused: video.paused,
            };
        }"""
    )


@pytest.mark.parametrize("silent_first", [False, True], ids=["as-recorded", "empty-first-audio"])
def test_whip_fed_hls_plays_from_its_first_segment_near_live(
    studio_stack, page: Page, silent_first: bool
):
    """A viewer waiting on the watch page when the broadcast starts plays
    from its first segment: no fatal hls.js error, no player restart, and,
    once playing, within a few seconds of the live edge. Also when the first
    segment's audio track is declared but empty."""
    email = studio_stack.create_user()
    stream = studio_stack.create_stream(email, title="From the browser")
    page.add_init_script(RECORD_HLS)
    watch = WatchPage(page).open(studio_stack.base_url, stream.public_id)

    replay = SrsReplay(studio_stack, stream.public_id, stream.stream_key, silent_first)
    replay.start()
    try:
        wait_until(lambda: watch.mode() == "live", 30, "the live player")
        # The first segment reaches the edge ~9 s in; play 3 s of it and on.
        watch.wait_until_playing(3.0, timeout_ms=40_000)
        # Before its first playlist reaches the edge (~9 s) the player retries
        # the 404s by starting over: count what happens once it has played.
        before = hls_state(page)
        samples = []
        while (
            not replay.finished.is_set()
            and studio_stack.stream_row(stream.public_id)["status"] == "live"
        ):
            state = hls_state(page)
            if state["latency"] is not None and not state["paused"]:
                samples.append(state["latency"])
            time.sleep(0.5)
        state = hls_state(page)
    finally:
        replay.finished.wait(60)
    assert replay.failure is None, replay.failure

    errors = state["errors"][len(before["errors"]) :]
    print("hls.js errors before playing:", before["errors"])
    print("hls.js errors while playing:", errors, "behind the edge:", samples)
    # Only the 404s of a playlist not there yet may be fatal (the player
    # starts over on them); a media error is fatal to the viewer's start.
    fatal = [e for e in state["errors"] if e["fatal"] and e["details"] != "manifestLoadError"]
    assert fatal == [], state["errors"]
    assert state["instances"] == before["instances"], f"the player restarted: {errors}"
    assert samples, "never sampled a playing live player"
    # Typically, not at every instant: a busy machine may stall it a moment
    # (hls.js then plays a little faster to catch up).
    typical = statistics.median(samples)
    assert typical <= MAX_BEHIND_EDGE, f"behind the live edge by {samples}"
