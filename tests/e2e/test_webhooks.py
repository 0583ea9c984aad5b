"""Webhooks and refused publishes in Chromium against the running studio
(gunicorn, RQ workers, nginx-rtmp): a creator adds a webhook, copies its
secret, sends a test event and watches it land in the log; OBS (ffmpeg) with
an old key is refused, the stream page says so and the receiver hears a
signed `publish.refused`."""

from __future__ import annotations

import itertools
import os
import re
import time

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.pages import RegisterPage, StreamsPage
from tests.polling import wait_until
from tests.webhook_receiver import documented_verify, serve

pytestmark = pytest.mark.e2e

_emails = itertools.count(1)


def _shot(page: Page, name: str) -> None:
    """With STUDIO_SCREENSHOTS=<dir>: the page at its width and at 390 px."""
    directory = os.environ.get("STUDIO_SCREENSHOTS")
    if not directory:
        return
    page.screenshot(path=f"{directory}/{name}.png", full_page=True)
    size = page.viewport_size
    page.set_viewport_size({"width": 390, "height": 844})
    page.screenshot(path=f"{directory}/{name}-390.png", full_page=True)
    if size:
        page.set_viewport_size(size)


def test_webhook_test_event_and_a_refused_publish(studio_stack, page: Page, ffmpeg_publisher):
    """The whole flow a creator sees, in Chromium (see the module docstring)."""
    base = studio_stack.base_url
    email = f"hooks-{int(time.time())}-{next(_emails)}@example.com"
    RegisterPage(page, base).open().register(email, "a long enough password")
    stream = StreamsPage(page).create("Webhook show")
    public_id = stream.public_id

    with serve() as receiver:
        page.get_by_test_id("nav-webhooks").click()
        page.get_by_label("URL").fill(receiver.url)
        page.get_by_label(re.compile(r"^stream\.live")).check()
        page.get_by_label(re.compile(r"^publish\.refused")).check()
        page.get_by_role("button", name="Add webhook").click()
        secret_box = page.locator("#new-secret-value")
        expect(secret_box).to_have_text(re.compile(r"^whsec_"))
        secret = secret_box.inner_text().strip()
        _shot(page, "webhooks-added")
        row = page.get_by_test_id("webhooks").locator("li[data-webhook]")
        expect(row).to_contain_text("stream.live, publish.refused")

        page.get_by_role("link", name="Open its delivery log").click()
        page.get_by_test_id("send-test").click()
        status = page.get_by_test_id("delivery-status").first
        expect(status).to_have_text("HTTP 200", timeout=20_000)  # the log re-fetches itself
        _shot(page, "webhook-log")
        assert receiver.requests[0].json()["type"] == "webhook.test"

        ffmpeg_publisher.start(f"{studio_stack.rtmp_url}/{public_id}?secret=an-old-key", seconds=5)
        refused = wait_until(
            lambda: [r for r in receiver.requests if r.json()["type"] == "publish.refused"],
            timeout=30,
            what="the publish.refused webhook",
        )
        request = refused[0]
        assert documented_verify()(secret, request.headers["Studio-Signature"], request.body)
        assert request.json()["data"]["reason"] == "old key"

    page.goto(f"{base}/streams/{public_id}")
    notice = page.get_by_test_id("refused-publish").first
    expect(notice).to_contain_text("A publish with an old key was refused at")
    expect(notice).to_contain_text("from 127.0.0.1")
    # The time is the viewer's own (localtime.js replaced the UTC text).
    expect(notice.get_by_test_id("refused-at")).not_to_contain_text("UTC")
    _shot(page, "stream-refused")


def test_a_failed_delivery_is_retried_by_the_workers_scheduler(
    studio_stack, page: Page, ffmpeg_publisher
):
    """The receiver answers 503 once: the running worker pool's RQ scheduler
    brings the retry back after its 30 s backoff and the same event lands."""
    base = studio_stack.base_url
    email = f"retry-{int(time.time())}-{next(_emails)}@example.com"
    RegisterPage(page, base).open().register(email, "a long enough password")
    public_id = StreamsPage(page).create("Retry show").public_id

    with serve() as receiver:
        receiver.statuses = [503]
        page.get_by_test_id("nav-webhooks").click()
        page.get_by_label("URL").fill(receiver.url)
        page.get_by_label(re.compile(r"^publish\.refused")).check()
        page.get_by_role("button", name="Add webhook").click()
        expect(page.locator("#new-secret-value")).to_have_text(re.compile(r"^whsec_"))

        ffmpeg_publisher.start(f"{studio_stack.rtmp_url}/{public_id}?secret=stale", seconds=3)
        wait_until(lambda: receiver.answered >= 2, timeout=120, what="the retried delivery")
        first, second = receiver.requests[:2]
        assert first.json()["id"] == second.json()["id"]

        page.get_by_role("link", name="Open its delivery log").click()
        rows = page.get_by_test_id("delivery-status")
        expect(rows).to_have_text(["HTTP 200", "HTTP 503"])
