"""srs/srs.conf against the SRS 5 contract (SRS itself cannot run here, so the
rules it enforces at start-up are checked from srs5-contract.md)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from workers.pipeline import local_hls

CONF = Path(__file__).resolve().parents[2] / "srs" / "srs.conf"

# srs5-contract.md §1.1: any other name in http_hooks makes SRS refuse to start.
HOOK_DIRECTIVES = {
    "enabled",
    "on_connect",
    "on_close",
    "on_publish",
    "on_unpublish",
    "on_play",
    "on_stop",
    "on_dvr",
    "on_hls",
    "on_hls_notify",
}
# §2.1: the keys of vhost hls {} in SRS 5 (unknown keys abort start-up).
HLS_KEYS = {
    "enabled",
    "hls_fragment",
    "hls_td_ratio",
    "hls_aof_ratio",
    "hls_window",
    "hls_path",
    "hls_m3u8_file",
    "hls_ts_file",
    "hls_entry_prefix",
    "hls_wait_keyframe",
    "hls_cleanup",
    "hls_dispose",
    "hls_ts_floor",
    "hls_acodec",
    "hls_vcodec",
    "hls_on_error",
    "hls_nb_notify",
    "hls_dts_directly",
    "hls_ctx",
    "hls_ts_ctx",
    "hls_keys",
    "hls_fragments_per_key",
    "hls_key_file",
    "hls_key_file_path",
    "hls_key_url",
}
# §4.5
RTC_KEYS = {
    "enabled",
    "rtc_to_rtmp",
    "rtmp_to_rtc",
    "pli_for_rtmp",
    "aac_bitrate",
    "opus_bitrate",
    "stun_timeout",
    "stun_strict_check",
    "nack",
    "nack_no_copy",
    "twcc",
    "dtls_role",
    "dtls_version",
    "drop_for_pt",
    "keep_bframe",
    "keep_avc_nalu_sei",
}


def parse(text: str) -> list:
    """SRS config -> nested [name, args, children] lists. A comment starts
    with `#` at the start of a word (§1.1: `#` inside a word is literal)."""
    tokens = []
    for line in text.splitlines():
        for word in re.findall(r"[^\s;{}]+|[;{}]", line):
            if word.startswith("#"):
                break
            tokens.append(word)
    root: list = []
    stack = [root]
    words: list[str] = []
    for token in tokens:
        if token == ";":
            assert words, "empty directive"
            stack[-1].append([words[0], words[1:], None])
            words = []
        elif token == "{":
            block = [words[0], words[1:], []]
            stack[-1].append(block)
            stack.append(block[2])
            words = []
        elif token == "}":
            assert not words, f"directive without ';' before '}}': {words}"
            stack.pop()
        else:
            words.append(token)
    assert len(stack) == 1 and not words, "unbalanced braces or a missing ';'"
    return root


def block(entries: list, name: str, *args: str) -> list:
    found = [e for e in entries if e[0] == name and e[1] == list(args) and e[2] is not None]
    assert len(found) == 1, f"expected one block {name} {args}"
    return found[0][2]


def values(entries: list) -> dict[str, list[str]]:
    return {e[0]: e[1] for e in entries if e[2] is None}


@pytest.fixture(scope="module")
def conf() -> list:
    return parse(CONF.read_text())


def test_ports_and_api(conf):
    """RTMP on 1935, the HTTP API on 1985, SRS's own file server off."""
    assert values(conf)["listen"] == ["1935"]
    assert values(block(conf, "http_api")) == {"enabled": ["on"], "listen": ["1985"]}
    assert values(block(conf, "http_server"))["enabled"] == ["off"]


def test_srt_ingest_on_10080_bridged_to_rtmp(conf):
    """SRT takes publishers on 10080/udp (§5.1: `srt_server` and the vhost's
    `srt` block both on) and feeds RTMP/HLS like the other ingests."""
    assert values(block(conf, "srt_server")) == {"enabled": ["on"], "listen": ["10080"]}
    vhost = block(conf, "vhost", "__defaultVhost__")
    assert values(block(vhost, "srt")) == {"enabled": ["on"], "srt_to_rtmp": ["on"]}


def test_webrtc_udp_and_tcp_with_candidate_from_env(conf):
    """WebRTC on 8000 (UDP and TCP); the candidate comes from $CANDIDATE."""
    rtc_server = block(conf, "rtc_server")
    settings = values(rtc_server)
    assert settings["enabled"] == ["on"] and settings["listen"] == ["8000"]
    assert settings["protocol"] == ["all"]
    assert settings["candidate"] == ["$CANDIDATE"]
    assert values(block(rtc_server, "tcp")) == {"enabled": ["on"], "listen": ["8000"]}


def test_vhost_rtc_bridges_to_rtmp_with_2s_keyframes(conf):
    """WHIP publishers reach RTMP/HLS; a keyframe is requested every 2 s (0.5-30 allowed)."""
    rtc = values(block(block(conf, "vhost", "__defaultVhost__"), "rtc"))
    assert set(rtc) <= RTC_KEYS
    assert rtc["enabled"] == ["on"] and rtc["rtc_to_rtmp"] == ["on"]
    assert 0.5 <= float(rtc["pli_for_rtmp"][0]) <= 30
    assert float(rtc["pli_for_rtmp"][0]) == 2


def test_vhost_rtc_plays_every_stream_over_whep(conf):
    """WHEP playback (srs5-contract.md §4.2, 4.6): with `rtmp_to_rtc off` SRS
    refuses to play an RTMP-published stream over WebRTC, so it is on (and
    RTC itself, on the server and the vhost); nothing overrides it to off in
    compose or `make dev`."""
    rtc = values(block(block(conf, "vhost", "__defaultVhost__"), "rtc"))
    assert rtc["enabled"] == ["on"] and rtc["rtmp_to_rtc"] == ["on"]
    assert values(block(conf, "rtc_server"))["enabled"] == ["on"]
    root = CONF.parents[1]
    for path in (root / "docker-compose.yml", root / "devtools" / "dev.py"):
        assert "RTC_RTMP_TO_RTC" not in path.read_text(), path


def test_hls_is_local_and_owned_by_the_uploader(conf):
    """Only legal hls keys (no fMP4 in SRS 5); 2 s fragments; SRS never deletes
    files (cleanup off, dispose 0); names are the layout the uploader reads."""
    hls = values(block(block(conf, "vhost", "__defaultVhost__"), "hls"))
    assert set(hls) <= HLS_KEYS
    assert not any("fmp4" in key for key in hls)
    assert hls["enabled"] == ["on"]
    assert float(hls["hls_fragment"][0]) == 2
    assert float(hls["hls_window"][0]) >= 3 * float(hls["hls_fragment"][0])
    assert hls["hls_cleanup"] == ["off"] and hls["hls_dispose"] == ["0"]
    assert hls["hls_path"][0].startswith("/") and "gs://" not in hls["hls_path"][0]
    m3u8 = hls["hls_m3u8_file"][0].replace("[app]", "live").replace("[stream]", "cam_1")
    ts = hls["hls_ts_file"][0].replace("[app]", "live").replace("[stream]", "cam_1")
    assert m3u8 == "live/cam_1.m3u8"
    match = local_hls.SEGMENT_FILE.match(ts.replace("[seq]", "17").removeprefix("live/"))
    assert match and match["stream"] == "cam_1" and match["number"] == "17"


def test_every_hook_event_points_at_the_studio(conf):
    """Only the ten legal directives; every event (on_hls_notify is a GET
    template, not a callback) posts to /hooks/srs with a token; one URL each,
    since the env override of a hook is a single URL."""
    hooks = block(block(conf, "vhost", "__defaultVhost__"), "http_hooks")
    settings = values(hooks)
    assert set(settings) <= HOOK_DIRECTIVES
    assert settings.pop("enabled") == ["on"]
    assert set(settings) == HOOK_DIRECTIVES - {"enabled", "on_hls_notify"}
    for event, urls in settings.items():
        assert len(urls) == 1, event
        assert re.fullmatch(r"https?://[^/\s]+/hooks/srs\?token=\S+", urls[0]), event


def test_exporter_is_enabled(conf):
    """SRS's Prometheus exporter is on."""
    assert values(block(conf, "exporter"))["enabled"] == ["on"]


def test_the_parser_rejects_what_srs_rejects():
    """The checker itself: a directive without ';' or an unclosed block fails."""
    with pytest.raises(AssertionError):
        parse("vhost x { hls { enabled on } }")
    with pytest.raises(AssertionError):
        parse("vhost x { hls { enabled on; }")
