"""Live chat in Chromium against the whole studio (nginx → web and socket
tiers, Redis pub/sub, PostgreSQL): viewers chat with each other, text stays
text, the creator and the moderators they appoint moderate from the watch,
stream and go-live pages, the chat's settings hold, and a replay shows its
chat in step with the video."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect
from sqlalchemy import select

from studio.extensions import db
from studio.models import Broadcast, ChatMessage, Stream, utcnow
from tests.conftest import PASSWORD
from tests.e2e.pages import ChatPanel, LoginPage, StreamPage, TopBar, WatchPage
from tests.e2e.test_live_status import hook
from tests.polling import wait_until

pytestmark = pytest.mark.e2e


@pytest.fixture()
def visitors(browser: Browser):
    """Browsers of people not logged in, each with its own storage:
    `visitors()` opens another."""
    contexts: list[BrowserContext] = []

    def open_context() -> BrowserContext:
        context = browser.new_context()
        contexts.append(context)
        return context

    yield open_context
    for context in contexts:
        context.close()


def _live_stream(studio_stack, title: str = "Chat stream"):
    """A creator's stream, live (the engine said publish), and the creator."""
    email = studio_stack.create_user()
    stream = studio_stack.create_stream(email, title)
    hook(studio_stack, stream.public_id, stream.stream_key, "publish")
    return email, stream


def _watch_chat(context: BrowserContext, base: str, public_id: str) -> ChatPanel:
    watch = WatchPage(context.new_page()).open(base, public_id)
    return ChatPanel(watch.page).wait_until_ready()


def _log_in(page: Page, base: str, email: str) -> None:
    LoginPage(page, base).open().log_in(email, PASSWORD)
    expect(TopBar(page).signed_in_as(email)).to_be_visible()


def test_two_viewers_chat_and_see_each_others_messages_as_text(studio_stack, visitors):
    """The chat opens when the stream goes live, its empty list inviting a
    first message. Two anonymous viewers pick a
    display name once and chat; each sees the
    other's messages as they are sent, announced politely to screen readers.
    Markup in a message is shown as the characters typed (no element made
    of it), an http link is a safe link, a javascript: one plain text, and
    an emoji counts as one character."""
    email = studio_stack.create_user()
    stream = studio_stack.create_stream(email, "Chat stream")
    base = studio_stack.base_url
    ada = _watch_chat(visitors(), base, stream.public_id)
    expect(ada.state).to_have_text("The chat opens when the stream goes live.")
    expect(ada.input).to_be_hidden()
    assert ada.empty_note() == "none"  # closed: the state says why, no invitation
    hook(studio_stack, stream.public_id, stream.stream_key, "publish")
    expect(ada.input).to_be_visible()  # opened by the status event, no reload
    expect(ada.state).to_be_hidden()
    bob = _watch_chat(visitors(), base, stream.public_id)
    expect(ada.messages).to_have_count(0)
    assert ada.empty_note() == '"No messages yet: say hello."'

    expect(ada.display_name).to_be_visible()
    count = ada.panel.get_by_test_id("chat-count")
    ada.input.fill("🎉" * 501)
    expect(count).to_have_text("1 character too many")
    expect(ada.send_button).to_be_disabled()
    ada.input.fill("🎉" * 500)
    expect(count).to_have_text("500/500")
    expect(ada.send_button).to_be_enabled()
    markup = '<b>bold</b> <img src=x onerror="window.pwned=1"> javascript:alert(1)'
    ada.write(f"Hello {markup} https://example.com/page 🎉", name="Ada")

    seen = bob.message("Hello")
    expect(seen).to_be_visible()
    assert bob.empty_note() == "none"
    expect(seen.get_by_test_id("chat-name")).to_have_text("Ada")
    expect(seen.get_by_test_id("chat-text")).to_have_text(
        f"Hello {markup} https://example.com/page 🎉"
    )
    assert seen.locator("b, img").count() == 0
    link = seen.get_by_role("link", name="https://example.com/page")
    expect(link).to_have_attribute("href", "https://example.com/page")
    expect(link).to_have_attribute("rel", "nofollow noopener ugc")
    expect(seen.get_by_role("link")).to_have_count(1)  # javascript: stays text
    assert bob.page.evaluate("() => window.pwned") is None
    expect(bob.announcer).to_contain_text("Ada: Hello")

    bob.write("Hi Ada!", name="Bob")
    expect(ada.message("Hi Ada!").get_by_test_id("chat-name")).to_have_text("Bob")
    bob.write("🎉" * 500)  # the longest message, in characters, not bytes
    expect(ada.messages.last.get_by_test_id("chat-text")).to_have_text("🎉" * 500)
    expect(ada.messages).to_have_count(3)

    # The name was asked once: a reload writes under it without asking.
    ada.page.reload()
    ada.wait_until_ready()
    expect(ada.messages).to_have_count(3)  # the history on arrival
    expect(ada.display_name).to_be_hidden()
    expect(ada.panel.get_by_test_id("chat-author")).to_contain_text("Ada")
    ada.write("Back again")
    expect(bob.message("Back again").get_by_test_id("chat-name")).to_have_text("Ada")


def test_a_reader_scrolled_back_is_offered_the_latest_not_moved(studio_stack, visitors):
    """A viewer reading back in a long conversation keeps their place when a
    message arrives and is offered "New messages" instead; it leads to the
    latest and goes away. Their own message brings them to the end."""
    _email, stream = _live_stream(studio_stack)
    broadcast_id = studio_stack.stream_row(stream.public_id)["broadcasts"][0]["id"]
    _seed_chat(studio_stack, broadcast_id, {f"Earlier message {n}": n for n in range(40)})
    base = studio_stack.base_url
    ada = _watch_chat(visitors(), base, stream.public_id)
    bob = _watch_chat(visitors(), base, stream.public_id)
    expect(ada.messages).to_have_count(40)
    listing = ada.panel.get_by_test_id("chat-messages")
    at_end = "list => list.scrollHeight - list.scrollTop - list.clientHeight < 40"
    assert listing.evaluate(at_end)
    jump = ada.panel.get_by_test_id("chat-jump")
    expect(jump).to_be_hidden()

    listing.evaluate("list => { list.scrollTop = 0; }")
    bob.write("Did you see that?", name="Bob")
    expect(ada.message("Did you see that?")).to_have_count(1)
    expect(jump).to_be_visible()
    assert listing.evaluate("list => list.scrollTop") == 0
    jump.click()
    expect(jump).to_be_hidden()
    assert listing.evaluate(at_end)
    expect(ada.message("Did you see that?")).to_be_in_viewport()

    listing.evaluate("list => { list.scrollTop = 0; }")
    ada.write("Yes!", name="Ada")
    expect(ada.message("Yes!")).to_be_in_viewport()
    expect(jump).to_be_hidden()


def test_a_message_deleted_by_the_creator_disappears_for_viewers(
    studio_stack, page: Page, visitors
):
    """The creator deletes a viewer's message from the stream page; it goes
    from the other viewers' pages without a reload."""
    email, stream = _live_stream(studio_stack)
    base = studio_stack.base_url
    writer = _watch_chat(visitors(), base, stream.public_id)
    reader = _watch_chat(visitors(), base, stream.public_id)
    writer.write("Something rude", name="Troll")
    writer.write("Something nice")
    expect(reader.message("Something rude")).to_be_visible()

    _log_in(page, base, email)
    StreamPage(page).open(base, stream.public_id)
    creator = ChatPanel(page).wait_until_ready()
    creator.moderate("Something rude", "Delete")

    expect(reader.message("Something rude")).to_have_count(0)
    expect(writer.message("Something rude")).to_have_count(0)
    expect(creator.message("Something rude")).to_have_count(0)
    expect(reader.message("Something nice")).to_be_visible()


def test_a_banned_participant_cannot_write_and_is_told_why(
    studio_stack, page: Page, context: BrowserContext, visitors
):
    """The creator appoints a moderator by email on the stream page; the
    moderator bans an anonymous viewer from the watch page. The viewer's next
    message is refused with the reason in words (the text stays in the box)
    and nobody sees it; lifting the ban lets them send it."""
    email, stream = _live_stream(studio_stack)
    moderator_email = studio_stack.create_user()
    base = studio_stack.base_url
    _log_in(page, base, email)
    StreamPage(page).open(base, stream.public_id)
    moderators = page.get_by_test_id("moderators")
    moderators.get_by_label("Moderator's email").fill(moderator_email)
    moderators.get_by_role("button", name="Appoint moderator").click()
    expect(page.get_by_test_id("moderator").filter(has_text=moderator_email)).to_be_visible()

    viewer = _watch_chat(visitors(), base, stream.public_id)
    # Signed in: an anonymous viewer's ban also holds their address (here
    # every browser's), an account's only the account.
    other_email = studio_stack.create_user()
    other_page = visitors().new_page()
    _log_in(other_page, base, other_email)
    WatchPage(other_page).open(base, stream.public_id)
    other = ChatPanel(other_page).wait_until_ready()
    viewer.write("First message", name="Spammer")

    moderator_browser = visitors()
    moderator_page = moderator_browser.new_page()
    _log_in(moderator_page, base, moderator_email)
    WatchPage(moderator_page).open(base, stream.public_id)
    moderator = ChatPanel(moderator_page).wait_until_ready()
    expect(moderator.moderation).to_be_visible()
    moderator.moderate("First message", "Ban")
    expect(moderator.panel.get_by_test_id("chat-restricted")).to_contain_text("Spammer")

    viewer.write("Second message")
    expect(viewer.error).to_have_text(re.compile("banned", re.I))
    expect(viewer.input).to_have_value("Second message")  # kept, not lost
    other.write("Still here")
    expect(viewer.message("Still here")).to_be_visible()
    expect(other.message("Second message")).to_have_count(0)

    moderator.open_moderation().get_by_role("button", name=re.compile("^Lift the ban")).click()
    expect(moderator.panel.get_by_test_id("chat-restricted")).to_have_count(0)
    viewer.send_button.click()
    expect(other.message("Second message")).to_be_visible()


def test_a_timed_out_viewer_is_told_how_long_is_left(studio_stack, page: Page, visitors):
    """A viewer timed out for 5 minutes from the go-live page is told, when
    writing, that they can write again in a few minutes."""
    email, stream = _live_stream(studio_stack)
    base = studio_stack.base_url
    viewer = _watch_chat(visitors(), base, stream.public_id)
    viewer.write("Too chatty", name="Chatty")
    _log_in(page, base, email)
    page.goto(f"{base}/streams/{stream.public_id}/live")
    creator = ChatPanel(page).wait_until_ready()
    creator.open_moderation().get_by_label("Time-out length (minutes)").fill("5")
    creator.moderate("Too chatty", "Time out")
    expect(creator.panel.get_by_test_id("chat-restricted")).to_contain_text("timed out")

    viewer.write("Am I still here?")
    expect(viewer.error).to_have_text(re.compile(r"timed out: you can write again in [45] min"))


def test_slow_mode_chat_off_and_signed_in_only_hold(
    studio_stack, page: Page, visitors, browser: Browser
):
    """Slow mode set on the stream page lets a viewer send one message per
    interval, held on the page and by the server (a reloaded page is told
    the seconds left); "signed in only" shows anonymous viewers a sign-in
    link instead of the box; "off" says the chat is off."""
    email, stream = _live_stream(studio_stack)
    base = studio_stack.base_url
    viewer = _watch_chat(visitors(), base, stream.public_id)
    _log_in(page, base, email)
    StreamPage(page).open(base, stream.public_id)
    creator = ChatPanel(page).wait_until_ready()

    creator.set_settings(slow_mode=120)
    expect(creator.panel.get_by_test_id("chat-settings-saved")).to_have_text("Chat settings saved.")
    viewer.write("One", name="Slowpoke")
    expect(viewer.message("One")).to_be_visible()
    expect(viewer.send_button).to_be_disabled()
    expect(viewer.error).to_contain_text("Slow mode is on")

    viewer.page.reload()  # the page forgets; the server does not
    viewer.wait_until_ready()
    viewer.write("Two")
    expect(viewer.error).to_have_text(
        re.compile(r"Slow mode is on: .* in (\d+ min( \d+ s)?|\d+ s)\.$")
    )
    expect(creator.message("Two")).to_have_count(0)

    creator.set_settings(mode="signed_in", slow_mode=0)
    expect(viewer.sign_in).to_be_visible()
    expect(viewer.sign_in.get_by_role("link", name="Log in to chat")).to_be_visible()
    expect(viewer.input).to_be_hidden()
    creator.write("Signed-in users only now")
    expect(creator.message("Signed-in users only now")).to_be_visible()

    creator.set_settings(mode="off")
    expect(viewer.state).to_have_text("Chat is off.")
    expect(viewer.sign_in).to_be_hidden()
    expect(viewer.input).to_be_hidden()
    expect(creator.input).to_be_hidden()


def test_the_replay_shows_the_chat_in_step_with_the_video(
    studio_stack, ffmpeg_publisher, page: Page
):
    """Messages sent during a broadcast appear on its replay page when the
    video reaches the moment each was sent; seeking back hides those not yet
    sent at that point, seeking forward shows them."""
    email = studio_stack.create_user()
    stream = studio_stack.create_stream(email, "Chat replay")
    publisher = ffmpeg_publisher.start(stream.publish_url, seconds=8)
    publisher.wait(timeout=60)
    row = wait_until(
        lambda: (
            (r := studio_stack.stream_row(stream.public_id))["broadcasts"][0]["replay_ready_at"]
            and r
        ),
        timeout=60,
        what="the replay",
    )
    broadcast_id = row["broadcasts"][0]["id"]
    offsets = {"at one second": 1.0, "at three seconds": 3.0, "at five seconds": 5.0}
    _seed_chat(studio_stack, broadcast_id, offsets)

    # When each message appears, note where the video stands (set up before
    # the page's scripts run, so no message can appear unnoticed).
    page.add_init_script(
        """document.addEventListener("DOMContentLoaded", () => {
            window.chatShownAt = {};
            const video = document.getElementById("video");
            const list = document.querySelector("[data-testid='chat-messages']");
            new MutationObserver((changes) => {
                for (const change of changes) for (const node of change.addedNodes) {
                    const text = node.querySelector("[data-testid='chat-text']").textContent;
                    window.chatShownAt[text] ??= video.currentTime;
                }
            }).observe(list, { childList: true });
        });"""
    )
    page.goto(f"{studio_stack.base_url}/watch/{stream.public_id}/replays/{broadcast_id}")
    chat = ChatPanel(page)
    expect(chat.panel).to_have_attribute("data-ready", "true")
    video = page.get_by_test_id("video")
    video.evaluate(
        "video => video.addEventListener('ended', () => { video.dataset.ended = 'true'; })"
    )
    expect(video).to_have_attribute("data-ended", "true", timeout=60_000)
    expect(chat.messages).to_have_count(3)
    shown_at = page.evaluate("() => window.chatShownAt")
    for text, offset in offsets.items():
        assert shown_at[text] >= offset, (text, shown_at)

    video.evaluate("video => { video.pause(); video.currentTime = 3.5; }")
    expect(chat.messages).to_have_count(2)
    expect(chat.message("at five seconds")).to_have_count(0)
    video.evaluate("video => { video.currentTime = 0.2; }")
    expect(chat.messages).to_have_count(0)
    video.evaluate("video => { video.currentTime = 6; }")
    expect(chat.messages).to_have_count(3)
    expect(chat.messages.last).to_have_text(re.compile("at five seconds"))


def _seed_chat(studio_stack, broadcast_id: int, offsets: dict[str, float]) -> None:
    """Messages of a viewer during the broadcast, `offsets` seconds in."""
    with studio_stack.app.app_context():
        broadcast = db.session.scalar(select(Broadcast).where(Broadcast.id == broadcast_id))
        for text, offset in offsets.items():
            db.session.add(
                ChatMessage(
                    stream_id=broadcast.stream_id,
                    broadcast_id=broadcast.id,
                    participant="a" + "0" * 20,
                    name="Replay viewer",
                    text=text,
                    sent_at=broadcast.started_at + timedelta(seconds=offset),
                    offset=offset,
                )
            )
        db.session.commit()
        db.session.remove()


def test_message_text_rules_in_the_browser(studio_stack, page: Page):
    """The page's own rules, run in Chromium: only http(s) URLs become links
    (trailing punctuation stays text; javascript:, data: and look-alikes stay
    text), an emoji is one character of the 500, waits read in words, and a
    replay shows exactly the messages sent by the video's time."""
    page.goto(f"{studio_stack.base_url}/")
    result = page.evaluate(
        """async () => {
            const chat = await import("/static/js/chat.js");
            const replay = await import("/static/js/chat_replay.js");
            const render = (text) => chat.messageNodes(text).map((node) =>
                node.nodeType === Node.TEXT_NODE
                    ? ["text", node.textContent]
                    : [node.tagName, node.getAttribute("href"), node.rel, node.textContent]);
            const item = chat.messageItem({ id: 7, participant: "a1", name: "<i>Eve</i>",
                signed_in: false, text: "<script>x()</script>", sent_at: "2026-01-01T00:00:00Z" });
            return {
                links: render("see https://example.com/a?b=1. or (http://x.test/p)!"),
                unsafe: render("javascript:alert(1) data:text/html,hi ftp://x.test httpx://y"),
                item: [item.querySelector("[data-testid='chat-name']").textContent,
                       item.querySelector("[data-testid='chat-text']").textContent,
                       item.querySelectorAll("i, script").length],
                counts: [chat.characterCount("🎉👍🏽a"), chat.characterCount("é")],
                waits: [chat.formatWait(12.2), chat.formatWait(270), chat.formatWait(3600)],
                timedOut: chat.errorText({ code: "timed_out" }, 270),
                unknown: chat.errorText({ code: "blocked_word", message: "That word is blocked." }),
                sent: [0, 0.99, 1, 4.5, 99].map((t) =>
                    replay.sentBy([{ offset: 1 }, { offset: 1 }, { offset: 4 }], t)),
            };
        }"""
    )
    assert result["links"] == [
        ["text", "see "],
        ["A", "https://example.com/a?b=1", "nofollow noopener ugc", "https://example.com/a?b=1"],
        ["text", ". or ("],
        ["A", "http://x.test/p", "nofollow noopener ugc", "http://x.test/p"],
        ["text", ")!"],
    ]
    assert result["unsafe"] == [
        ["text", "javascript:alert(1) data:text/html,hi ftp://x.test httpx://y"]
    ]
    assert result["item"] == ["<i>Eve</i>", "<script>x()</script>", 0]
    assert result["counts"] == [4, 1]  # 🎉, 👍 and its skin tone, a
    assert result["waits"] == ["13 s", "4 min 30 s", "1 h"]
    assert result["timedOut"] == "You are timed out: you can write again in 4 min 30 s."
    assert result["unknown"] == "That word is blocked."
    assert result["sent"] == [0, 0, 2, 3, 3]


def test_a_replay_reads_every_page_of_its_chat(studio_stack, page: Page):
    """A broadcast with more messages than one API page: the replay's chat
    reads them all, oldest first, and none of another broadcast."""
    email = studio_stack.create_user()
    stream = studio_stack.create_stream(email, "Busy chat")
    with studio_stack.app.app_context():
        row = db.session.scalar(select(Stream).where(Stream.public_id == stream.public_id))
        started = utcnow() - timedelta(hours=1)
        broadcasts = [
            Broadcast(
                stream=row,
                client_id=f"seeded-{n}",
                protocol="rtmp",
                started_at=started,
                ended_at=started + timedelta(minutes=5),
            )
            for n in range(2)
        ]
        db.session.add_all(broadcasts)
        db.session.flush()
        ids = [b.id for b in broadcasts]
        db.session.commit()
        db.session.remove()
    _seed_chat(studio_stack, ids[0], {f"message {n}": float(n) for n in range(205)})
    _seed_chat(studio_stack, ids[1], {"another broadcast": 1.0})
    page.goto(f"{studio_stack.base_url}/")
    texts = page.evaluate(
        """async (url) => {
            const replay = await import("/static/js/chat_replay.js");
            return (await replay.fetchBroadcastChat(url)).map((m) => m.text);
        }""",
        f"/api/v1/streams/{stream.public_id}/chat?broadcast={ids[0]}",
    )
    assert texts == [f"message {n}" for n in range(205)]


def test_a_new_broadcast_starts_a_new_conversation_on_an_open_page(studio_stack, visitors):
    """A page left open across broadcasts keeps the ended one's messages,
    and clears them when the next broadcast starts (its replay keeps them)."""
    email = studio_stack.create_user()
    stream = studio_stack.create_stream(email, "Two shows")
    hook(studio_stack, stream.public_id, stream.stream_key, "publish")
    ada = _watch_chat(visitors(), studio_stack.base_url, stream.public_id)
    ada.write("see you tomorrow", name="Ada")
    expect(ada.message("see you tomorrow")).to_be_visible()
    hook(studio_stack, stream.public_id, stream.stream_key, "publish_done")
    expect(ada.state).to_have_text("The chat opens when the stream goes live.")
    expect(ada.message("see you tomorrow")).to_be_visible()
    hook(studio_stack, stream.public_id, stream.stream_key, "publish")
    expect(ada.input).to_be_visible()
    expect(ada.messages).to_have_count(0)
