"""OBS's path, from outside: publish with ffmpeg to the RTMP address the API
hands out, watch it in Chromium from the CDN, count the viewer, end it, play
the replay; and a rotated key cuts the publisher."""

from __future__ import annotations

from playwright.sync_api import BrowserContext, expect

from tests.e2e.pages import WatchPage
from tests.e2e.qa.checks import wait_for_exit, wait_for_playback, wait_for_status
from tests.e2e.qa.target import publish_url, seconds
from tests.polling import poll


def test_obs_publish_plays_live_and_then_as_a_replay(
    creator, rtmp_publisher, context: BrowserContext
):
    """A stream published like OBS goes live, plays on the watch page,
    counts its viewer, ends when the publisher stops, and its replay plays."""
    # No reconnect window: the broadcast ends as soon as the publisher stops.
    stream = creator.create_stream("OBS publish", reconnect_window=0)
    publisher = rtmp_publisher(publish_url(stream))
    wait_for_status(creator, stream["id"], "live", within=20)

    viewer = context.new_page()
    watch = WatchPage(viewer).open(creator.target.base_url, stream["id"])
    wait_for_playback(viewer, 2, within=45, what="the live watch page")
    counted = poll(lambda: creator.stream(stream["id"])["viewers"] >= 1, timeout=seconds(30))
    assert counted, "the open watch page was never counted as a viewer"
    expect(watch.viewers).to_contain_text("1")

    publisher.terminate()
    wait_for_exit(publisher, 10, "stopping the publisher")
    wait_for_status(creator, stream["id"], "ended", within=30)
    broadcasts = poll(
        lambda: [
            b
            for b in creator.call("GET", f"/streams/{stream['id']}/broadcasts")["broadcasts"]
            if b["replay_url"]
        ],
        timeout=seconds(60),
        interval=1,
    )
    assert broadcasts, "the replay was never written after the broadcast ended"
    replay = context.new_page()
    replay.goto(f"{creator.target.base_url}/watch/{stream['id']}/replays/{broadcasts[0]['id']}")
    wait_for_playback(replay, 1, within=30, what="the replay page")


def test_rotating_the_key_cuts_the_publisher_and_refuses_the_old_key(creator, rtmp_publisher):
    """After a key rotation the live publisher is dropped at once, and a
    publisher still using the old key is refused."""
    stream = creator.create_stream("key rotation")
    old_url = publish_url(stream)
    publisher = rtmp_publisher(old_url)
    wait_for_status(creator, stream["id"], "live", within=20)

    rotated = creator.call("POST", f"/streams/{stream['id']}/rotate-key")
    assert rotated["ingest"]["stream_key"] != stream["ingest"]["stream_key"]
    wait_for_exit(publisher, 20, "the publisher with the rotated key")
    wait_for_status(creator, stream["id"], "ended", within=20)

    again = rtmp_publisher(old_url)
    code = wait_for_exit(again, 20, "a publisher with the old key")
    assert code != 0
    assert creator.stream(stream["id"])["status"] == "ended"
