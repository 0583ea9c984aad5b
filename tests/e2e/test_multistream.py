"""Multistream end to end: a live stream relayed by the multistream process
to a second nginx-rtmp server (a stand-in for YouTube or Twitch) while the
first keeps serving, a dead target retrying on its own, and every relay
stopped when the publisher stops."""

from __future__ import annotations

import json
import subprocess
import xml.etree.ElementTree as ET

import psutil
import pytest
import requests
from mirakuru import SimpleExecutor

from devtools.process import free_port
from studio.auth import service as accounts
from studio.extensions import db
from studio.models import Target
from tests import stack
from tests.polling import wait_until

GOOD_KEY = "good-target-key-1234"
DEAD_KEY = "dead-target-key-5678"


@pytest.fixture()
def multistream(studio_stack):
    """The multistream process on the stack (quick retries for the test)."""
    # The stack allows local targets (STUDIO_TARGET_ALLOW_PRIVATE): the
    # targets here are local nginx-rtmp servers, refused in production.
    env = {**studio_stack.env, "STUDIO_TARGET_RETRY_MAX": "2"}
    handle = stack.start_multistream(env, studio_stack.var_dir)
    yield handle
    handle.stop()


@pytest.fixture()
def target_server(studio_stack):
    server = stack.start_rtmp_target(studio_stack.var_dir)
    yield server
    server.stop()


@pytest.fixture()
def api(studio_stack):
    """A requests session calling the API as a fresh creator."""
    email = studio_stack.create_user()
    with studio_stack.app.app_context():
        user = accounts.get_user_by_email(db.session, email)
        _, token = accounts.create_api_token(db.session, user, "multistream")
        db.session.commit()
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {token}"
    session.base = f"{studio_stack.base_url}/api/v1"
    return session


def publishing(stat_url: str) -> dict[str, int]:
    """nginx-rtmp's /stat: bytes received per stream that has a publisher."""
    root = ET.fromstring(requests.get(stat_url, timeout=5).text)  # noqa: S314 (our own nginx)
    found = {}
    for stream in root.iter("stream"):
        if any(c.find("publishing") is not None for c in stream.iter("client")):
            found[stream.findtext("name", "")] = int(stream.findtext("bytes_in", "0"))
    return found


def probe(url: str) -> dict:
    """ffprobe of an RTMP playback: its streams' codecs."""
    result = subprocess.run(
        [
            "ffprobe",
            "-v",
            "error",
            "-rw_timeout",
            "10000000",
            "-show_entries",
            "stream=codec_name",
            "-of",
            "json",
            url,
        ],
        capture_output=True,
        timeout=30,
        check=False,
    )
    return json.loads(result.stdout or b"{}")


def target_states(api, stream_id: str) -> dict[str, dict]:
    reply = api.get(f"{api.base}/streams/{stream_id}/targets", timeout=5)
    assert reply.status_code == 200, reply.text
    return {target["name"]: target for target in reply.json()["targets"]}


def test_a_live_stream_reaches_its_targets_and_a_dead_one_only_retries(
    studio_stack, multistream, target_server, api, ffmpeg_publisher
):
    """Two enabled targets: the live one receives the stream (its nginx sees a
    publisher under the target's key, a key on no process's command line, and
    ffprobe finds H.264 and AAC there)
    while the studio's own engine keeps serving the broadcast; the dead one
    (a closed port) reports `retrying` with the error, never the key; the
    broadcast stays live. Disabling the good target stops its relay and
    enabling it starts it again; when the publisher stops every relay stops.
    The keys are encrypted in the database."""
    created = api.post(f"{api.base}/streams", json={"title": "Simulcast"}, timeout=5).json()
    stream_id = created["id"]
    closed_port = free_port()
    for name, url, key in (
        ("Good", target_server.rtmp_url, GOOD_KEY),
        ("Dead", f"rtmp://127.0.0.1:{closed_port}/live", DEAD_KEY),
    ):
        reply = api.post(
            f"{api.base}/streams/{stream_id}/targets",
            json={"name": name, "url": url, "key": key},
            timeout=5,
        )
        assert reply.status_code == 201, reply.text
    with studio_stack.app.app_context():
        rows = db.session.query(Target).all()
        assert all(GOOD_KEY.encode() not in bytes(r.key_encrypted) for r in rows)
        assert all(DEAD_KEY.encode() not in bytes(r.key_encrypted) for r in rows)
        db.session.remove()

    stream_key = created["ingest"]["stream_key"]
    publisher = ffmpeg_publisher.start(f"{studio_stack.rtmp_url}/{stream_key}")
    engine_stat = f"{studio_stack.control_url}/stat"

    wait_until(
        lambda: target_states(api, stream_id)["Good"]["state"] == "live",
        timeout=45,
        what="the good target live",
    )
    wait_until(lambda: GOOD_KEY in publishing(target_server.stat_url), 15, "target receiving")
    # Any user of the machine can list command lines: no key is on one.
    for process in psutil.process_iter(["cmdline"]):
        assert GOOD_KEY not in " ".join(process.info["cmdline"] or []), process
    codecs = probe(f"{target_server.rtmp_url}/{GOOD_KEY}")
    assert {s["codec_name"] for s in codecs.get("streams", [])} == {"h264", "aac"}, codecs
    dead = wait_until(
        lambda: (t := target_states(api, stream_id)["Dead"])["state"] == "retrying" and t,
        timeout=45,
        what="the dead target retrying",
    )
    assert dead["last_error"], dead
    assert DEAD_KEY not in dead["last_error"]
    # The broadcast and the good target are unaffected by the dead one.
    assert studio_stack.stream_row(stream_id)["status"] == "live"
    before = publishing(engine_stat)[stream_id]
    wait_until(lambda: publishing(engine_stat)[stream_id] > before, 15, "the engine receiving")
    sent = publishing(target_server.stat_url)[GOOD_KEY]
    wait_until(
        lambda: publishing(target_server.stat_url).get(GOOD_KEY, 0) > sent,
        15,
        "the good target still receiving",
    )
    assert target_states(api, stream_id)["Good"]["state"] == "live"

    good_id = target_states(api, stream_id)["Good"]["id"]
    path = f"{api.base}/streams/{stream_id}/targets/{good_id}"
    assert api.patch(path, json={"enabled": False}, timeout=5).status_code == 200
    wait_until(lambda: GOOD_KEY not in publishing(target_server.stat_url), 20, "the relay stopped")
    wait_until(lambda: target_states(api, stream_id)["Good"]["state"] == "stopped", 20, "stopped")
    assert api.patch(path, json={"enabled": True}, timeout=5).status_code == 200
    wait_until(lambda: GOOD_KEY in publishing(target_server.stat_url), 30, "the relay back")

    publisher.send_signal(2)  # SIGINT: ffmpeg ends the stream cleanly
    publisher.wait(15)
    wait_until(
        lambda: all(t["state"] == "stopped" for t in target_states(api, stream_id).values()),
        timeout=30,
        what="every relay stopped",
    )
    wait_until(
        lambda: not publishing(target_server.stat_url), 20, "nothing published to the target"
    )


def test_the_stream_page_adds_targets_and_follows_their_relays(
    studio_stack, page, multistream, target_server, ffmpeg_publisher
):
    """On the stream page a creator picks a preset (it fills in the server
    URL), adds a custom target and sees its state follow the relay without
    reloading: stopped, then live once the stream is; the key shows only its
    last characters."""
    from playwright.sync_api import expect

    from tests.conftest import PASSWORD
    from tests.e2e.pages import LoginPage, StreamPage, TopBar

    email = studio_stack.create_user()
    stream = studio_stack.create_stream(email, "Simulcast page")
    base = studio_stack.base_url
    LoginPage(page, base).open().log_in(email, PASSWORD)
    expect(TopBar(page).signed_in_as(email)).to_be_visible()
    StreamPage(page).open(base, stream.public_id)
    section = page.get_by_test_id("multistream")
    section.get_by_label("Service").select_option("youtube")
    expect(section.get_by_label("Server URL")).to_have_value(
        "rtmps://a.rtmps.youtube.com:443/live2"
    )
    expect(section.get_by_label("Name")).to_have_value("YouTube")
    section.get_by_label("Service").select_option("custom")
    expect(section.get_by_label("Server URL")).to_have_value("")
    section.get_by_label("Name").fill("Backup server")
    section.get_by_label("Server URL").fill(target_server.rtmp_url)
    section.get_by_label("Stream key").fill(GOOD_KEY)
    section.get_by_role("button", name="Add target").click()

    row = page.locator("tr[data-target]", has_text="Backup server")
    expect(row.get_by_test_id("target-key")).to_have_text("••••1234")
    expect(row.get_by_test_id("target-state")).to_have_text("stopped")
    assert GOOD_KEY not in page.content()
    page.screenshot(path=str(studio_stack.var_dir / "multistream-desktop.png"), full_page=True)

    ffmpeg_publisher.start(stream.publish_url)
    expect(row.get_by_test_id("target-state")).to_have_text("live", timeout=45_000)
    page.set_viewport_size({"width": 390, "height": 844})
    section.scroll_into_view_if_needed()
    page.screenshot(path=str(studio_stack.var_dir / "multistream-390.png"), full_page=True)
    row.get_by_test_id("disable-target").click()
    expect(row.get_by_test_id("target-state")).to_have_text("disabled")
    wait_until(lambda: GOOD_KEY not in publishing(target_server.stat_url), 20, "relay stopped")


def test_a_target_that_goes_away_mid_broadcast_retries_and_comes_back(
    studio_stack, multistream, target_server, api, ffmpeg_publisher
):
    """The target's server dies while it is live: the target turns `retrying`
    with the error while the broadcast goes on; once the server is back (same
    port) the relay reconnects by itself and the target is `live` again."""
    created = api.post(f"{api.base}/streams", json={"title": "Flaky target"}, timeout=5).json()
    stream_id = created["id"]
    reply = api.post(
        f"{api.base}/streams/{stream_id}/targets",
        json={"name": "Flaky", "url": target_server.rtmp_url, "key": GOOD_KEY},
        timeout=5,
    )
    assert reply.status_code == 201, reply.text
    ffmpeg_publisher.start(f"{studio_stack.rtmp_url}/{created['ingest']['stream_key']}")
    wait_until(lambda: target_states(api, stream_id)["Flaky"]["state"] == "live", 45, "target live")

    rtmp_port = int(target_server.rtmp_url.rsplit(":", 1)[1].split("/", 1)[0])
    http_port = int(target_server.url.rsplit(":", 1)[1])
    target_server.stop()
    flaky = wait_until(
        lambda: (t := target_states(api, stream_id)["Flaky"])["state"] == "retrying" and t,
        timeout=45,
        what="the target retrying",
    )
    assert flaky["last_error"] and GOOD_KEY not in flaky["last_error"]
    engine_stat = f"{studio_stack.control_url}/stat"
    before = publishing(engine_stat)[stream_id]
    wait_until(lambda: publishing(engine_stat)[stream_id] > before, 15, "the broadcast going on")
    assert studio_stack.stream_row(stream_id)["status"] == "live"

    back = stack.start_rtmp_target(
        studio_stack.var_dir, "rtmp-target-back", rtmp_port=rtmp_port, http_port=http_port
    )
    try:
        wait_until(
            lambda: target_states(api, stream_id)["Flaky"]["state"] == "live", 45, "live again"
        )
        wait_until(lambda: GOOD_KEY in publishing(back.stat_url), 15, "the target receiving")
    finally:
        back.stop()


def test_a_second_multistream_process_waits_and_takes_over(
    studio_stack, multistream, target_server, api, ffmpeg_publisher
):
    """Two multistream processes: one relays (the target's server sees a single
    publisher and the target stays `live`); when it stops, the other takes
    over by itself and the target is live again."""
    env = {**studio_stack.env, "STUDIO_TARGET_RETRY_MAX": "2"}
    standby = stack.start_multistream(env, studio_stack.var_dir, name="multistream-standby")
    # The logs outlive the processes of earlier tests: only what follows counts.
    seen = {handle.log_path: len(_log(handle)) for handle in (multistream, standby)}
    try:
        created = api.post(f"{api.base}/streams", json={"title": "Failover"}, timeout=5).json()
        stream_id = created["id"]
        reply = api.post(
            f"{api.base}/streams/{stream_id}/targets",
            json={"name": "Main", "url": target_server.rtmp_url, "key": GOOD_KEY},
            timeout=5,
        )
        assert reply.status_code == 201, reply.text
        ffmpeg_publisher.start(f"{studio_stack.rtmp_url}/{created['ingest']['stream_key']}")
        wait_until(lambda: GOOD_KEY in publishing(target_server.stat_url), 45, "target receiving")
        wait_until(
            lambda: target_states(api, stream_id)["Main"]["state"] == "live", 15, "target live"
        )
        relaying = [h for h in (multistream, standby) if "started" in _log(h)[seen[h.log_path] :]]
        assert len(relaying) == 1, [h.log_path.name for h in relaying]
        waiting = standby if relaying[0] is multistream else multistream

        relaying[0].stop()
        offset = seen[waiting.log_path]
        wait_until(lambda: "started" in _log(waiting)[offset:], 45, "the other taking over")
        wait_until(lambda: GOOD_KEY in publishing(target_server.stat_url), 30, "relayed again")
        wait_until(
            lambda: target_states(api, stream_id)["Main"]["state"] == "live", 30, "live again"
        )
    finally:
        standby.stop()


def _log(handle: SimpleExecutor) -> str:
    return handle.log_path.read_text(errors="replace") if handle.log_path else ""
