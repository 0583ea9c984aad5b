"""Chromium for the go-live tests: the shared launch settings plus a fake
camera and microphone (granted without a prompt) and loopback ICE
candidates, which headless Chromium does not gather otherwise."""

from __future__ import annotations

import pytest

BASE_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
INSECURE_HOST = "insecure.studio.test"
MEDIA_ARGS = [
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--allow-loopback-in-peer-connection",
    # getDisplayMedia picks the (fake) screen without a picker.
    "--auto-select-desktop-capture-source=Entire screen",
    "--enable-usermedia-screen-capturing",
    "--autoplay-policy=no-user-gesture-required",
    # A name that is not localhost: pages on http:// under it are not secure.
    f"--host-resolver-rules=MAP {INSECURE_HOST} 127.0.0.1",
]


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    """Extends whatever the outer conftest set (Debian's Chromium, no sandbox)."""
    args = list(browser_type_launch_args.get("args") or BASE_ARGS)
    return {
        "executable_path": "/usr/bin/chromium",
        **browser_type_launch_args,
        "args": args + [arg for arg in MEDIA_ARGS if arg not in args],
    }


@pytest.fixture(scope="session")
def browser(browser_type, browser_type_launch_args):
    """A Chromium of our own with the arguments above: the shared session
    browser may already run without a fake camera when other e2e tests
    start first."""
    launched = browser_type.launch(**browser_type_launch_args)
    yield launched
    launched.close()
