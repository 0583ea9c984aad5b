"""What a creator and a visitor see without any media: safe against
production (`read_mostly`: one stream is created, then deleted)."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.pages import LoginPage, WatchPage
from tests.e2e.qa.target import seconds

pytestmark = pytest.mark.read_mostly


def test_creator_logs_in_and_finds_a_new_stream(qa_target, creator, page: Page):
    """A creator logs in through the login page; a stream made through the
    API is on their list, and its public watch page says it is not live."""
    stream = creator.create_stream("read-mostly")
    assert stream["status"] == "created"
    assert stream["ingest"]["rtmp_server"].startswith(("rtmp://", "rtmps://"))

    LoginPage(page, qa_target.base_url).open().log_in(qa_target.email, qa_target.password)
    page.wait_for_url(lambda url: not url.endswith("/login"), timeout=seconds(15) * 1000)
    page.goto(f"{qa_target.base_url}/streams")
    expect(page.get_by_text(stream["title"])).to_be_visible()

    watch = WatchPage(page).open(qa_target.base_url, stream["id"])
    expect(watch.offline_card).to_be_visible()
    creator.delete_stream(stream["id"])
    gone = page.goto(f"{qa_target.base_url}/watch/{stream['id']}")
    assert gone is not None and gone.status == 404


def test_api_describes_itself(creator):
    """The OpenAPI document and the reference page are served, and name the
    stream endpoints the suite relies on."""
    document = creator.api.get(f"{creator.target.api_url}/openapi.json", timeout=seconds(15))
    assert document.status_code == 200
    paths = document.json()["paths"]
    assert "/streams" in paths and "/streams/{stream_id}" in paths
    reference = creator.api.get(f"{creator.target.api_url}/docs", timeout=seconds(15))
    assert reference.status_code == 200 and "text/html" in reference.headers["Content-Type"]
