"""The reconnect window on the creator's and the viewer's pages: the form
field, "End broadcast now", and the `reconnecting` status as rendered."""

from __future__ import annotations

import pytest

from studio.models import Stream
from studio.streams import service
from studio.streams.service import PublishAttempt
from tests.dbstate import snapshot

ALICE = "alice@example.com"


@pytest.fixture()
def alice(make_user):
    return make_user(ALICE)


@pytest.fixture()
def logged_in(auth, alice):
    assert auth.login(ALICE).status_code == 302
    return auth


def go_live_and_drop(db, stream) -> None:
    service.start_broadcast(
        db.session, PublishAttempt(stream.public_id, stream.stream_key, "c1", "rtmp")
    )
    db.session.commit()
    service.end_broadcast(db.session, stream.public_id, "c1")
    db.session.commit()


def test_the_stream_page_sets_the_window(client, db, logged_in, alice, make_stream):
    """The settings form shows the window and saves a new one."""
    stream = make_stream(alice, reconnect_window=60)
    page = client.get(f"/streams/{stream.public_id}").get_data(as_text=True)
    assert 'name="reconnect_window"' in page and 'value="60"' in page
    token = logged_in.form_token(f"/streams/{stream.public_id}")
    reply = client.post(
        f"/streams/{stream.public_id}/reconnect-window",
        data={"csrf_token": token, "reconnect_window": "300"},
    )
    assert reply.status_code == 302
    db.session.expire_all()
    assert db.session.get(Stream, stream.id).reconnect_window == 300


@pytest.mark.parametrize("value", ["", "-1", "1801", "abc", "1.5", "9" * 400])
def test_a_bad_window_is_400_and_changes_nothing(client, db, logged_in, alice, make_stream, value):
    """A window outside 0..1800 or not a whole number: the page again with
    the field's error, nothing stored."""
    stream = make_stream(alice, reconnect_window=60)
    token = logged_in.form_token(f"/streams/{stream.public_id}")
    before = snapshot(db)
    reply = client.post(
        f"/streams/{stream.public_id}/reconnect-window",
        data={"csrf_token": token, "reconnect_window": value},
    )
    assert reply.status_code == 400
    assert 'role="alert"' in reply.get_data(as_text=True)
    assert snapshot(db) == before


def test_a_reconnecting_stream_shows_it_and_can_be_ended(client, db, logged_in, alice, make_stream):
    """Reconnecting: the badge and the notice with "End broadcast now" on the
    stream page, "Reconnecting…" on the watch page; ending it ends the
    broadcast (reason stopped)."""
    stream = make_stream(alice, reconnect_window=60)
    go_live_and_drop(db, stream)
    page = client.get(f"/streams/{stream.public_id}").get_data(as_text=True)
    assert "status-reconnecting" in page and "Reconnecting…" in page
    notice = page.split('data-testid="reconnect-notice"', 1)[1].split(">", 1)[0]
    assert "hidden" not in notice
    watch = client.get(f"/watch/{stream.public_id}").get_data(as_text=True)
    assert 'data-testid="watch-status">Reconnecting…' in watch
    overlay = watch.split('data-testid="reconnecting"', 1)[1].split(">", 1)[0]
    assert "hidden" not in overlay
    token = logged_in.form_token(f"/streams/{stream.public_id}")
    reply = client.post(f"/streams/{stream.public_id}/end", data={"csrf_token": token})
    assert reply.status_code == 302
    db.session.expire_all()
    row = db.session.get(Stream, stream.id)
    assert row.status == "ended" and row.broadcasts[0].end_reason == "stopped"


def test_ending_without_a_broadcast_changes_nothing(client, db, logged_in, alice, make_stream):
    """ "End broadcast" on a stream with nothing under way: a redirect, no change."""
    stream = make_stream(alice)
    token = logged_in.form_token(f"/streams/{stream.public_id}")
    before = snapshot(db)
    reply = client.post(f"/streams/{stream.public_id}/end", data={"csrf_token": token})
    assert reply.status_code == 302
    assert snapshot(db) == before


def test_live_actions_ask_first(client, db, logged_in, alice, make_stream):
    """Rotate, disable and delete carry the consequence for a live broadcast,
    and the page has the confirmation dialog."""
    stream = make_stream(alice)
    page = client.get(f"/streams/{stream.public_id}").get_data(as_text=True)
    assert 'data-confirm-live="Rotating the key ends the live broadcast now.' in page
    assert 'data-confirm-live="Disabling the stream ends the live broadcast now' in page
    assert 'data-confirm-live="Deleting the stream ends the live broadcast now' in page
    assert '<dialog id="confirm-dialog"' in page
