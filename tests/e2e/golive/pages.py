"""Page objects for the go-live tests."""

from __future__ import annotations

from playwright.sync_api import BrowserContext, Locator, Page, expect

from tests.conftest import PASSWORD


def log_in(page: Page, base_url: str, email: str, password: str = PASSWORD) -> None:
    page.goto(f"{base_url}/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(lambda url: not url.endswith("/login"))


class GoLivePage:
    def __init__(self, page: Page, base_url: str, public_id: str):
        self.page = page
        self.url = f"{base_url}/streams/{public_id}/live"

    def open(self) -> GoLivePage:
        self.page.goto(self.url)
        return self

    @property
    def go_live_button(self) -> Locator:
        return self.page.get_by_test_id("go-live")

    @property
    def stop_button(self) -> Locator:
        return self.page.get_by_test_id("stop")

    def stop(self) -> None:
        """Stop, and confirm that the broadcast ends now."""
        self.stop_button.click()
        dialog = self.page.get_by_role("dialog", name="Stop the broadcast?")
        dialog.get_by_role("button", name="Stop broadcast").click()
        expect(dialog).to_be_hidden()

    @property
    def path(self) -> Locator:
        return self.page.get_by_test_id("ingest-path")

    @property
    def message(self) -> Locator:
        return self.page.get_by_test_id("golive-message")

    @property
    def status(self) -> Locator:
        return self.page.get_by_test_id("stream-status")

    @property
    def elapsed(self) -> Locator:
        return self.page.get_by_test_id("golive-elapsed")

    def health(self, name: str) -> Locator:
        return self.page.locator(f"[data-testid='golive-health'] [data-health='{name}']")

    def preview_playing(self) -> None:
        """Wait until the preview shows camera frames."""
        self.page.wait_for_function(
            "() => { const v = document.querySelector('[data-testid=preview]');"
            " return v && v.videoWidth > 0 && v.currentTime > 0; }"
        )


def open_go_live(context: BrowserContext, base_url: str, email: str, public_id: str) -> GoLivePage:
    """A new page in `context`: `email` logs in and opens the go-live page of
    stream `public_id`; returns it once the camera preview plays."""
    page = context.new_page()
    log_in(page, base_url, email)
    golive = GoLivePage(page, base_url, public_id).open()
    golive.preview_playing()
    return golive
