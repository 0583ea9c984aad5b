"""The WebRTC row of `bench/latency.py --whep`: glass-to-glass latency of a
viewer playing the watch page over WHEP.

SRS cannot run on this machine, so the WHEP endpoint is the test double
(tests/e2e/golive/whip_double.py) that plays SRS's role in the browser tests:
for each WHEP session it reads the stream back from nginx-rtmp over RTMP
(ffmpeg through PyAV, low-delay options), decodes it and sends it to the
browser re-encoded by aiortc (H.264 + Opus). That relay is not SRS (which
passes H.264 through without decoding): the figure is an upper bound of what
the page and a media server on this machine reach, not SRS's own figure.
"""

from __future__ import annotations

import time

from bench.latency import VAR, Studio, publish, sample, viewer_page
from tests.e2e.golive.whip_double import SrsWhipDouble

# ffmpeg's demuxer, reading the live RTMP stream: no probing ahead.
LOW_DELAY = {
    "fflags": "nobuffer",
    "flags": "low_delay",
    "probesize": "32768",
    "analyzeduration": "1000000",
}


def measure_whep(fragment: float, samples: int, browser) -> dict:
    """{"webrtc": figures} of a viewer who joined 8 fragments in and plays
    over WebRTC (the studio's engine set to SRS, WHEP at the double)."""
    var = VAR / f"fragment-{fragment:g}-whep"
    double = SrsWhipDouble().start()
    studio = None
    publisher = None
    try:
        studio = Studio(
            var,
            fragment,
            {
                "STUDIO_MEDIA_ENGINE": "srs",
                "STUDIO_SRS_API_URL": "http://127.0.0.1:9",  # no SRS API here
                "STUDIO_WHEP_URL": double.whep_url,
                # The relay opens the RTMP stream and waits for a keyframe
                # before its first frame: not part of what is measured.
                "STUDIO_WHEP_TIMEOUT": "15",
            },
        )
        double.hook_url = f"{studio.base_url}/hooks/srs?token={studio.hook_token}"
        public_id, key = studio.stream()
        publisher = publish(f"{studio.nginx.rtmp_url}/{key}", fragment, var / "ffmpeg.log")
        double.media = f"{studio.nginx.rtmp_url}/{public_id}"
        double.media_options = LOW_DELAY
        time.sleep(8 * fragment)
        page = viewer_page(browser)
        page.goto(f"{studio.base_url}/watch/{public_id}")
        try:
            page.get_by_test_id("playback-mode").filter(has_text="WebRTC").wait_for(timeout=30_000)
        except Exception:
            page.screenshot(path=str(var / "viewer-webrtc-failed.png"))
            note = page.get_by_test_id("playback-note").text_content()
            print(f"WebRTC viewer did not play: {note!r}; hooks: {double.hook_replies}")
            raise
        return sample({"webrtc": page}, fragment, samples, var)
    finally:
        if publisher is not None and publisher.poll() is None:
            publisher.terminate()
            publisher.wait(10)
        if studio is not None:
            studio.stop()
        double.stop()
