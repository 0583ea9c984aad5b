"""A signed-in user's display name: what the chat shows for them."""

from __future__ import annotations

from studio.chat.rules import display_name


def test_a_user_sets_the_name_chat_shows(client, auth, db, make_user):
    """The account page shows the current name and saves a new one, which is
    then the name the user writes under."""
    user = make_user("ada.lovelace@example.com")
    auth.login(user.email)
    page = client.get("/account")
    assert page.status_code == 200
    assert 'value="ada.lovelace"' in page.get_data(as_text=True)
    reply = client.post(
        "/account", data={"display_name": "  Ada  L ", "csrf_token": auth.form_token("/account")}
    )
    assert reply.status_code == 302
    db.session.refresh(user)
    assert user.display_name == "Ada L"
    assert display_name(user) == "Ada L"


def test_a_bad_name_is_refused_and_changes_nothing(client, auth, db, make_user):
    """Empty, over-long or control-character names get a message in words;
    the name stays as it was."""
    user = make_user()
    auth.login(user.email)
    for bad, message in (
        ("", "Choose a display name."),
        ("x" * 41, "at most 40"),
        ("Ada\u0007", "control characters"),
    ):
        reply = client.post(
            "/account", data={"display_name": bad, "csrf_token": auth.form_token("/account")}
        )
        assert reply.status_code == 400
        assert message in reply.get_data(as_text=True)
        db.session.refresh(user)
        assert user.display_name is None


def test_the_account_page_needs_a_login(client):
    assert client.get("/account").status_code == 302


def test_a_token_and_its_owners_stream_are_read_together(db, make_user, make_stream, make_token):
    """`stream_for_token`: one row with the token's owner, their stream and its
    newest refused publish; another creator's stream or an unknown id reads as
    no stream; an unknown or revoked token reads as nothing."""
    from datetime import timedelta

    from studio.auth import service as accounts
    from studio.models import ApiToken, PublishRefusal, utcnow

    owner = make_user()
    token = make_token(owner)
    stream, foreign = make_stream(owner), make_stream()
    stream.visibility = "private"
    now = utcnow()
    db.session.add_all(
        [
            PublishRefusal(stream_id=stream.id, refused_at=now - timedelta(minutes=5), reason="x"),
            PublishRefusal(stream_id=stream.id, refused_at=now, ip="192.0.2.7", reason="old key"),
            PublishRefusal(stream_id=foreign.id, refused_at=now, reason="live limit"),
        ]
    )
    db.session.commit()

    def read(token: str, public_id: str):
        return accounts.stream_for_token(db.session.connection(), token, public_id)

    row = read(token, stream.public_id)
    assert (row.owner_id, row.id, row.public_id) == (owner.id, stream.id, stream.public_id)
    assert (row.title, row.stream_key, row.status) == (stream.title, stream.stream_key, "created")
    assert row.private is True and row.visibility == "private"
    assert (row.refused_at, row.refused_ip, row.refused_reason) == (now, "192.0.2.7", "old key")
    for other in (foreign.public_id, "doesnotexist0000"):
        row = read(token, other)
        assert row.owner_id == owner.id
        assert (row.id, row.refused_at) == (None, None)
    assert read(token + "x", stream.public_id) is None
    token_row = db.session.query(ApiToken).filter_by(user_id=owner.id).one()
    accounts.revoke_api_token(db.session, owner, token_row.id)
    db.session.commit()
    assert read(token, stream.public_id) is None
