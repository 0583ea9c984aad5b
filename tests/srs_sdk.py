"""What the SRS WebRTC SDK (srs.sdk.js, SrsRtcPublisherAsync) does with a
webrtc:// URL, for tests of the URLs the studio hands out. SRS cannot run
here, and neither does its SDK outside a page: its URL rule is restated."""

from __future__ import annotations

import urllib.parse


def sdk_api_url(webrtc_url: str, page_scheme: str = "http") -> str:
    """Where the SRS SDK (srs.sdk.js, SrsRtcPublisherAsync) posts for a webrtc://
    URL, as its prepareUrl builds it (srs5-contract.md §4.3): `schema` from the
    query, else the page's; the URL's port, else 443 for https, else 1985; the
    query's keys appended to /rtc/v1/publish/."""
    parsed = urllib.parse.urlsplit(webrtc_url.replace("webrtc://", "http://", 1))
    query = dict(pair.split("=", 1) for pair in parsed.query.split("&") if pair)
    scheme = query.get("schema") or page_scheme
    port = parsed.port or (443 if scheme == "https" else 1985)
    extra = "&".join(f"{k}={v}" for k, v in query.items() if k not in ("api", "play"))
    return f"{scheme}://{parsed.hostname}:{port}/rtc/v1/publish/" + (f"?{extra}" if extra else "")
