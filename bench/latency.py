"""Glass-to-glass latency as a viewer sees it (`make bench-latency`).

For each fragment length (STUDIO_HLS_FRAGMENT: 2 s and 1 s by default; the
nginx-rtmp hls_fragment, the encoder's keyframe interval, the playlists'
target duration and the edge's playlist caching follow it) it starts what
production runs, on this machine: a throwaway PostgreSQL database, Redis,
fake-gcs-server, nginx (nginx-rtmp ingest, the CDN edge, the front site),
the web and socket tiers, RQ workers and the HLS watcher. Then:

1. ffmpeg publishes a test pattern over RTMP in real time and burns its
   capture clock into the picture: a row of 16 black/white boxes, the wall
   clock (pts-based: the moment ffmpeg started plus the frame's pts, which
   `-re` paces to the wall clock) in tenths of a second modulo 2^16, plus the
   same clock as text for a human looking at a screenshot;
2. Chromium (Playwright, Debian's /usr/bin/chromium) plays the watch page
   from the CDN edge with the page's own hls.js settings;
3. once a second it records both figures: the clock in the frame on screen
   (the video drawn onto a canvas and the boxes read back) against the
   viewer's clock (glass-to-glass, burned clock), and the page's own
   "N s behind live" (hls.js's playingDate from #EXT-X-PROGRAM-DATE-TIME).

Writes docs/benchmarks.md (section "Latency").

Usage: python bench/latency.py [--fragments 2 1] [--samples 20] [--no-write]
"""

from __future__ import annotations

import argparse
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from playwright.sync_api import sync_playwright  # noqa: E402

from bench.latency_report import VIEWERS, section, summary, write_section  # noqa: E402
from devtools import runner  # noqa: E402
from devtools.nginx import FrontSite, start_nginx  # noqa: E402
from devtools.process import free_port  # noqa: E402
from devtools.services import (  # noqa: E402
    create_database,
    ensure_postgres,
    start_fake_gcs,
    start_redis,
)
from tests import launch, stack  # noqa: E402

VAR = ROOT / "var" / "bench-latency"
FPS = 30
BITS = 16  # the burned clock: tenths of a second modulo 2**16 (109 minutes)
BOX, STEP = 16, 20  # box size and spacing in pixels, along the top of the picture
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--autoplay-policy=no-user-gesture-required",
    # WebRTC (--whep): the double answers with loopback candidates only.
    "--allow-loopback-in-peer-connection",
]

# Counts the video's stalls ("waiting" after it first played), for the page.
COUNT_STALLS = """
window.__stalls = 0;
window.__played = false;
document.addEventListener("playing", () => { window.__played = true; }, true);
document.addEventListener("waiting", () => { if (window.__played) window.__stalls += 1; }, true);
"""

# In the page: the clock burned into the frame on screen (tenths of a second
# modulo 2**BITS) read from the boxes, and the viewer's clock, at once.
READ_FRAME = f"""() => {{
  const video = document.getElementById("video");
  if (!video || video.readyState < 2 || video.paused) return null;
  const canvas = document.createElement("canvas");
  canvas.width = video.videoWidth;
  canvas.height = video.videoHeight;
  const context = canvas.getContext("2d", {{ willReadFrequently: true }});
  context.drawImage(video, 0, 0);
  const now = Date.now();
  let value = 0;
  for (let bit = 0; bit < {BITS}; bit += 1) {{
    const x = bit * {STEP} + {BOX // 2}, y = {BOX // 2};
    const [r, g, b] = context.getImageData(x, y, 1, 1).data;
    if ((r + g + b) / 3 > 128) value += 2 ** bit;
  }}
  const shown = document.querySelector("[data-testid='live-latency']");
  return {{ value, now, page: shown && !shown.closest("[hidden]") ? shown.dataset.seconds : null }};
}}"""


def clock_filter(reference: int) -> str:
    """ffmpeg filters: a black bar with BITS boxes (white = bit set) holding
    the wall clock at which the frame was made, and the same clock as text.

    The frame's pts is first replaced by the wall clock (RTCTIME, since
    `reference`) so the boxes show when the frame was captured, not when
    ffmpeg thinks it started; the regular pts is then restored."""
    tenths = f"floor(({reference}+t)*10)"
    filters = [
        f"setpts='(RTCTIME-{reference * 1_000_000})/(TB*1000000)'",
        f"drawbox=x=0:y=0:w={BITS * STEP}:h={BOX}:color=black:t=fill",
    ]
    for bit in range(BITS):
        filters.append(
            f"drawbox=x={bit * STEP}:y=0:w={BOX}:h={BOX}:color=white:t=fill"
            f":enable='mod(floor({tenths}/{2**bit}),2)'"
        )
    filters.append(
        "drawtext=text='%{localtime\\:%X}':x=10:y=30:fontsize=32:fontcolor=white"
        ":box=1:boxcolor=black"
    )
    filters.append(f"setpts=N/({FPS}*TB)")
    return ",".join(filters)


def publish(url: str, fragment: float, log: Path) -> subprocess.Popen:
    """ffmpeg: a test pattern with the burned clock, a keyframe every fragment."""
    gop = str(round(fragment * FPS))
    argv = [
        "ffmpeg",
        "-hide_banner",
        "-loglevel",
        "warning",
        "-nostdin",
        "-re",
        "-f",
        "lavfi",
        "-i",
        f"testsrc=size=640x360:rate={FPS}",
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:sample_rate=44100",
        "-vf",
        clock_filter(int(time.time()) - 60),
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-tune",
        "zerolatency",
        "-g",
        gop,
        "-keyint_min",
        gop,
        "-sc_threshold",
        "0",
        "-pix_fmt",
        "yuv420p",
        "-c:a",
        "aac",
        "-b:a",
        "64k",
        "-f",
        "flv",
        url,
    ]
    with open(log, "ab") as out:
        return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out)


class Studio:
    """The stack for one fragment length; `.stop()` ends it."""

    def __init__(self, var: Path, fragment: float, extra: dict[str, str] | None = None):
        var.mkdir(parents=True, exist_ok=True)
        self.var, self.services, self.handles = var, [], {}
        postgres = ensure_postgres(var, database="postgres")
        self.server_url = postgres.url
        self.dbname = f"bench_{secrets.token_hex(4)}"
        create_database(postgres.url, self.dbname)
        redis_service = start_redis(var)
        gcs = start_fake_gcs(var, backend="memory")
        self.services += [redis_service, gcs]
        port, sockets_port = free_port(), free_port()
        front = FrontSite(
            port=free_port(),
            web_url=f"http://127.0.0.1:{port}",
            sockets_url=f"http://127.0.0.1:{sockets_port}",
        )
        self.base_url = f"http://127.0.0.1:{front.port}"
        token = self.hook_token = secrets.token_urlsafe(16)
        self.nginx = start_nginx(
            var,
            hook_url=f"{front.web_url}/hooks/nginx-rtmp?token={token}",
            gcs_url=gcs.url,
            bucket=gcs.bucket,
            front=front,
            hls_fragment=fragment,
        )
        self.services.append(self.nginx)
        self.env = runner.studio_env(
            database_url=postgres.url.rsplit("/", 1)[0] + "/" + self.dbname,
            redis_url=redis_service.url,
            gcs=gcs,
            nginx=self.nginx,
            public_url=self.base_url,
            secret_key=secrets.token_urlsafe(32),
            hook_token=token,
            extra={"STUDIO_LOG_LEVEL": "WARNING", **(extra or {})},
        )
        launch.migrate(self.env)
        self.handles["web"] = stack.start_gunicorn(self.env, var, port)
        self.handles["sockets"] = stack.start_gunicorn(self.env, var, sockets_port, tier="sockets")
        self.handles["workers"] = stack.start_workers(self.env, var, 2)
        self.handles["watcher"] = stack.start_watcher(self.env, var)

    def stream(self) -> tuple[str, str]:
        """A new stream: (public id, stream key as the encoder sends it)."""
        from studio import config, create_app
        from studio.auth import service as accounts
        from studio.extensions import db
        from studio.streams import service

        app = create_app(config.from_environ(self.env))
        with app.app_context():
            user = accounts.create_user(
                db.session, f"bench-{secrets.token_hex(4)}@example.com", secrets.token_urlsafe(12)
            )
            stream = service.create_stream(db.session, user, "latency", reconnect_window=0)
            db.session.commit()
            found = (stream.public_id, f"{stream.public_id}?secret={stream.stream_key}")
            db.session.remove()
            db.engine.dispose()
        return found

    def stop(self) -> None:
        for handle in reversed(list(self.handles.values())):
            handle.stop()
        for service in reversed(self.services):
            service.stop()
        stack.drop_database(self.server_url, self.dbname)


def measure(fragment: float, samples: int, browser) -> dict:
    """Both figures (seconds, one sample a second) for two viewers: one who
    opened the page as the broadcast started, one who joined it 8 fragments
    later."""
    var = VAR / f"fragment-{fragment:g}"
    studio = Studio(var, fragment)
    publisher = None
    try:
        public_id, key = studio.stream()
        publisher = publish(f"{studio.nginx.rtmp_url}/{key}", fragment, var / "ffmpeg.log")
        viewers = {"start": viewer_page(browser)}
        viewers["start"].goto(f"{studio.base_url}/watch/{public_id}")
        time.sleep(8 * fragment)
        viewers["joined"] = viewer_page(browser)
        viewers["joined"].goto(f"{studio.base_url}/watch/{public_id}")
        return sample(viewers, fragment, samples, var)
    finally:
        if publisher is not None and publisher.poll() is None:
            publisher.send_signal(signal.SIGINT)
            try:
                publisher.wait(10)
            except subprocess.TimeoutExpired:
                publisher.kill()
                publisher.wait()
        studio.stop()


def viewer_page(browser):
    """A page that counts its video's stalls."""
    page = browser.new_page()
    page.add_init_script(COUNT_STALLS)
    return page


def sample(viewers: dict, fragment: float, samples: int, var: Path) -> dict:
    """Once a second for `samples` s: both figures of each viewer page, and
    the stalls each had meanwhile."""
    for page in viewers.values():
        page.wait_for_function(
            "() => { const v = document.getElementById('video');"
            " return v && !v.paused && v.currentTime > 2; }",
            timeout=90_000,
        )
    time.sleep(2 * fragment)  # past the player's start-up
    result = {"fragment": fragment}
    for name, page in viewers.items():
        result[name] = {"burned": [], "pdt": [], "stalls": -page.evaluate("window.__stalls")}
    for _ in range(samples):
        for name, page in viewers.items():
            reading = page.evaluate(READ_FRAME)
            if reading is None:
                continue
            delay = ((reading["now"] // 100) - reading["value"]) % 2**BITS / 10
            result[name]["burned"].append(delay)
            if reading["page"] is not None:
                result[name]["pdt"].append(float(reading["page"]))
        time.sleep(1)
    for name, page in viewers.items():
        result[name]["stalls"] += page.evaluate("window.__stalls")
        page.screenshot(path=str(var / f"viewer-{name}.png"))
        page.close()
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fragments", type=float, nargs="+", default=[2.0, 1.0])
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument(
        "--whep", action="store_true", help="also a WebRTC viewer against the WHEP test double"
    )
    args = parser.parse_args(argv)
    results = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS
        )
        try:
            for fragment in args.fragments:
                result = measure(fragment, args.samples, browser)
                if args.whep:
                    from bench.latency_whep import measure_whep

                    result.update(measure_whep(fragment, args.samples, browser))
                for viewer in VIEWERS:
                    if viewer not in result:
                        continue
                    print(
                        f"fragment {fragment:g} s, {viewer}: burned clock"
                        f" {summary(result[viewer]['burned'])};"
                        f" program date-time {summary(result[viewer]['pdt'])};"
                        f" stalls {result[viewer]['stalls']}",
                        flush=True,
                    )
                results.append(result)
        finally:
            browser.close()
    text = section(results, args.samples)
    if args.no_write:
        print(text)
    else:
        write_section(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
