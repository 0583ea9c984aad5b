"""Live status on open pages survives a restart of the web workers."""

from __future__ import annotations

import contextlib
import re
import signal

import pytest
import requests
from playwright.sync_api import BrowserContext, Page, expect
from websockets.sync.client import connect

from devtools.nginx import FrontSite
from tests.conftest import PASSWORD
from tests.e2e.pages import LoginPage, StreamPage, TopBar, WatchPage

pytestmark = pytest.mark.e2e


def hook(stack, public_id: str, stream_key: str, call: str) -> None:
    """What nginx-rtmp posts when an encoder starts or stops publishing."""
    form = {
        "call": call,
        "app": "live",
        "name": public_id,
        "clientid": "9001",
        "secret": stream_key,
        "addr": "127.0.0.1",
    }
    url = f"{stack.base_url}/hooks/nginx-rtmp?token={stack.hook_token}"
    reply = requests.post(url, data=form, timeout=10)
    assert reply.status_code == 200, reply.text


def test_pages_reconnect_after_a_graceful_restart_and_keep_updating(
    studio_stack, page: Page, context: BrowserContext
):
    """A graceful restart of the socket tier (HUP) closes the pages' sockets; both
    pages reconnect by themselves and later status changes still reach them
    without a reload."""
    email = studio_stack.create_user()
    stream = studio_stack.create_stream(email)
    LoginPage(page, studio_stack.base_url).open().log_in(email, PASSWORD)
    expect(TopBar(page).signed_in_as(email)).to_be_visible()
    studio = StreamPage(page).open(studio_stack.base_url, stream.public_id)
    watch = WatchPage(context.new_page()).open(studio_stack.base_url, stream.public_id)
    studio_socket = page.locator("#live-status")
    watch_socket = watch.page.locator("#player")
    for socket in (studio_socket, watch_socket):
        expect(socket).to_have_attribute("data-connected", "true")
    # A reload would drop these marks.
    for tab in (page, watch.page):
        tab.evaluate("window.notReloaded = true")

    studio_stack.handles["sockets"].process.send_signal(signal.SIGHUP)
    for socket in (studio_socket, watch_socket):
        expect(socket).to_have_attribute("data-connected", "false", timeout=15_000)
    for socket in (studio_socket, watch_socket):
        expect(socket).to_have_attribute("data-connected", "true", timeout=20_000)

    hook(studio_stack, stream.public_id, stream.stream_key, "publish")
    expect(studio.status).to_have_text("LIVE")
    expect(watch.status).to_have_text("LIVE")
    # The engine has no such publisher (only its callback was replayed).
    expect(studio.ingest_health).to_contain_text("Waiting for the encoder")

    hook(studio_stack, stream.public_id, stream.stream_key, "publish_done")
    expect(studio.status).to_have_text("ended")
    expect(watch.status).to_have_text("ended")
    expect(watch.ended_card).to_be_visible()
    for tab in (page, watch.page):
        assert tab.evaluate("window.notReloaded") is True


def test_a_page_over_the_per_address_socket_limit_says_so_and_gets_in_later(
    studio_stack, page: Page
):
    """While its address already holds as many sockets as nginx allows, a
    watch page is turned away with 1013 and marks itself "refused" (it does
    not hang); once those sockets close it connects by itself."""
    stream = studio_stack.create_stream(studio_stack.create_user())
    url = re.sub(r"^http", "ws", studio_stack.base_url) + f"/ws/streams/{stream.public_id}"
    watch_socket = page.locator("#player")
    with contextlib.ExitStack() as held:
        for _ in range(FrontSite.ws_per_address):
            socket = held.enter_context(connect(url, proxy=None, ping_interval=None))
            socket.recv(timeout=20)  # admitted: the stream's status
        WatchPage(page).open(studio_stack.base_url, stream.public_id)
        expect(watch_socket).to_have_attribute("data-connected", "refused", timeout=15_000)
    # The page waits a while longer after a refusal before it tries again.
    expect(watch_socket).to_have_attribute("data-connected", "true", timeout=40_000)
