"""Chat moderators appointed from the stream page: by the email of an
account, listed on the page, removed again; only the owner can, and a bad
or unknown email is refused in words and changes nothing."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from studio.models import ChatModerationAction, ChatModerator
from tests.dbstate import snapshot

ALICE = "alice@example.com"
MOD = "mod@example.com"


@pytest.fixture()
def alice(make_user):
    return make_user(ALICE)


@pytest.fixture()
def logged_in(auth, alice):
    assert auth.login(ALICE).status_code == 302
    return auth


def _appoint(client, auth, stream, email):
    path = f"/streams/{stream.public_id}"
    return client.post(
        f"{path}/moderators", data={"csrf_token": auth.form_token(path), "email": email}
    )


def test_owner_appoints_lists_and_removes_a_moderator(
    client, db, logged_in, alice, make_user, make_stream
):
    """An appointed account is listed on the stream page, the appointment is
    in the moderation log, and Remove ends it."""
    stream = make_stream(alice)
    moderator = make_user(MOD)
    reply = _appoint(client, logged_in, stream, "  Mod@Example.com ")
    assert reply.status_code == 302
    assert reply.headers["Location"].endswith(f"/streams/{stream.public_id}#moderators")
    page = client.get(f"/streams/{stream.public_id}").get_data(as_text=True)
    assert f'data-testid="moderator">{MOD}' in page
    assert "now moderates this stream" in page
    row = db.session.scalar(select(ChatModerator).where(ChatModerator.stream_id == stream.id))
    assert row.user_id == moderator.id
    logged = db.session.scalars(
        select(ChatModerationAction.action).where(ChatModerationAction.stream_id == stream.id)
    ).all()
    assert logged == ["appoint"]

    path = f"/streams/{stream.public_id}"
    reply = client.post(
        f"{path}/moderators/{row.id}/remove", data={"csrf_token": logged_in.form_token(path)}
    )
    assert reply.status_code == 302
    db.session.rollback()
    assert db.session.scalar(select(ChatModerator)) is None
    assert "No moderators yet." in client.get(path).get_data(as_text=True)


@pytest.mark.parametrize(
    ("email", "status", "says"),
    [
        ("nobody@example.com", 404, "No account has that e-mail address."),
        (ALICE, 400, "The owner moderates their stream already."),
        ("", 400, "This field is required."),
        ("x" * 250 + "@example.com", 400, "254 characters"),
    ],
)
def test_a_bad_appointment_is_refused_in_words_and_changes_nothing(
    client, db, logged_in, alice, make_stream, email, status, says
):
    stream = make_stream(alice)
    before = snapshot(db)
    reply = _appoint(client, logged_in, stream, email)
    assert reply.status_code == status
    assert says in reply.get_data(as_text=True)
    assert snapshot(db) == before


def test_another_creator_cannot_appoint_or_remove(client, db, logged_in, make_user, make_stream):
    """Bob's stream is 404 to Alice for appointments and removals; nothing changes."""
    bob = make_user("bob@example.com")
    stream = make_stream(bob, "Bob's stream")
    make_user(MOD)
    before = snapshot(db)
    assert _appoint(client, logged_in, stream, MOD).status_code == 404
    token = logged_in.form_token("/")
    reply = client.post(
        f"/streams/{stream.public_id}/moderators/1/remove", data={"csrf_token": token}
    )
    assert reply.status_code == 404
    assert snapshot(db) == before


def test_removing_a_moderator_of_another_stream_is_404(
    client, db, logged_in, alice, make_user, make_stream
):
    """A moderator id that is not this stream's is refused and stays."""
    mine = make_stream(alice, "Mine")
    bobs = make_stream(make_user("bob@example.com"), "Bob's")
    other = ChatModerator(stream_id=bobs.id, user=make_user(MOD))
    db.session.add(other)
    db.session.commit()
    before = snapshot(db)
    path = f"/streams/{mine.public_id}"
    reply = client.post(
        f"{path}/moderators/{other.id}/remove", data={"csrf_token": logged_in.form_token(path)}
    )
    assert reply.status_code == 404
    assert snapshot(db) == before
