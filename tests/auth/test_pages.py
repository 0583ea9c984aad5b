"""Register, log in and API tokens through the real pages: bad input is 400 with a
message and changes nothing; login never tells whether an email exists."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from studio.models import ApiToken, User
from tests.api.helpers import Api
from tests.conftest import PASSWORD, csrf_token
from tests.dbstate import snapshot


def errors(html: str) -> list[str]:
    return re.findall(r'<p class="error" role="alert">([^<]*)</p>', html)


def post_form(client, path: str, **fields):
    token = csrf_token(client.get(path).get_data(as_text=True))
    return client.post(path, data={"csrf_token": token, **fields})


def test_login_does_not_say_whether_the_email_exists(client, db, make_user):
    """Unknown email and wrong password get the same 400 and the same message."""
    make_user("known@example.com")
    unknown = post_form(client, "/login", email="nobody@example.com", password=PASSWORD)
    wrong = post_form(client, "/login", email="known@example.com", password="wrong password!")
    assert unknown.status_code == wrong.status_code == 400
    assert errors(unknown.get_data(as_text=True)) == ["Email or password is incorrect."]
    assert errors(wrong.get_data(as_text=True)) == errors(unknown.get_data(as_text=True))
    assert client.get("/streams").status_code == 302  # still logged out


def test_login_with_the_right_password_works_and_ignores_email_case(client, db, make_user):
    """The right password logs in (email case does not matter)."""
    make_user("known@example.com")
    reply = post_form(client, "/login", email="KNOWN@example.com", password=PASSWORD)
    assert reply.status_code == 302
    assert client.get("/streams").status_code == 200


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"email": "", "password": PASSWORD}, "This field is required."),
        ({"email": "a@example.com", "password": ""}, "This field is required."),
        ({"email": "a@example.com", "password": "x" * 257}, "256"),
    ],
)
def test_login_with_missing_fields_is_400(client, db, fields, message):
    """A login form with a missing or oversized field is 400 with a message."""
    reply = post_form(client, "/login", **fields)
    assert reply.status_code == 400
    assert any(message in error for error in errors(reply.get_data(as_text=True)))


@pytest.mark.parametrize(
    "email, password, message",
    [
        ("taken@example.com", PASSWORD, "already exists"),
        ("TAKEN@example.com", PASSWORD, "already exists"),
        ("new@example.com", "short", "between 10 and 256"),
        ("not-an-email", PASSWORD, "@"),
        ("two@@example.com", PASSWORD, "@-sign"),
        ("", PASSWORD, "required"),
    ],
)
def test_registration_with_bad_input_is_400_and_creates_nothing(
    client, db, make_user, email, password, message
):
    """Registering with a taken email, a short password or an invalid email is 400
    with a message on the field; no account is created and nobody is logged in."""
    make_user("taken@example.com")
    before = snapshot(db)
    reply = post_form(client, "/register", email=email, password=password)
    assert reply.status_code == 400
    messages = errors(reply.get_data(as_text=True))
    assert messages and any(message.lower() in m.lower() for m in messages)
    assert snapshot(db) == before
    assert client.get("/streams").status_code == 302


def test_an_operators_address_is_not_registered_on_the_web(app, client, db, monkeypatch):
    """An address STUDIO_OPERATORS lists (in any case) is refused by
    /register with a message naming the command that creates it, so nobody
    becomes an operator by registering it first; no account, nobody logged
    in. The command creates it, and other addresses register as before."""
    monkeypatch.setitem(app.config, "OPERATORS", ["ops@example.com"])
    before = snapshot(db)
    reply = post_form(client, "/register", email="Ops@Example.com", password=PASSWORD)
    assert reply.status_code == 400
    assert any("users create" in m for m in errors(reply.get_data(as_text=True)))
    assert snapshot(db) == before
    assert client.get("/streams").status_code == 302
    args = ["users", "create", "--email", "ops@example.com", "--password", PASSWORD]
    assert app.test_cli_runner().invoke(args=args).exit_code == 0
    assert (
        post_form(client, "/register", email="dev@example.com", password=PASSWORD).status_code
        == 302
    )


def test_registration_creates_a_scrypt_hashed_account_and_logs_in(client, db):
    """A valid registration stores the email lower-cased and an scrypt hash, and logs in."""
    reply = post_form(client, "/register", email="New@Example.com", password=PASSWORD)
    assert reply.status_code == 302
    user = db.session.scalar(select(User))
    assert user.email == "new@example.com"
    assert user.password_hash.startswith("scrypt:") and PASSWORD not in user.password_hash
    assert client.get("/streams").status_code == 200


@pytest.fixture()
def alice(client, auth, make_user):
    user = make_user("alice@example.com")
    assert auth.login("alice@example.com").status_code == 302
    return user


def test_token_page_shows_a_new_token_once_and_it_works(client, db, alice):
    """Creating a token shows it once; it authenticates the API; only its hash is stored."""
    reply = post_form(client, "/tokens", name="CI")
    page = reply.get_data(as_text=True)
    token = re.search(r'id="new-token-value">(lst_[^<]+)<', page).group(1)
    row = db.session.scalar(select(ApiToken))
    assert row.name == "CI" and token not in row.token_hash
    assert Api(client, token).get("/streams").status_code == 200
    assert token not in client.get("/tokens").get_data(as_text=True)


def test_token_with_a_too_long_name_is_400(client, db, alice):
    """A token name over 80 characters is 400 with a message; no token is created."""
    before = snapshot(db)
    reply = post_form(client, "/tokens", name="n" * 81)
    assert reply.status_code == 400
    assert errors(reply.get_data(as_text=True))
    assert snapshot(db) == before


def test_revoking_another_users_token_is_404(client, db, alice, make_user, make_token):
    """Alice cannot revoke Bob's token (404, same as a missing one); it keeps working."""
    bob_token = make_token(make_user("bob@example.com"))
    bob_row = db.session.scalar(select(ApiToken))
    before = snapshot(db)
    token = csrf_token(client.get("/tokens").get_data(as_text=True))
    assert (
        client.post(f"/tokens/{bob_row.id}/revoke", data={"csrf_token": token}).status_code == 404
    )
    assert client.post("/tokens/99999/revoke", data={"csrf_token": token}).status_code == 404
    assert snapshot(db) == before
    assert Api(client, bob_token).get("/streams").status_code == 200


def test_revoking_a_token_stops_it(client, db, alice, make_token):
    """A revoked token gets 401 from the API from then on."""
    token = make_token(alice)
    row = db.session.scalar(select(ApiToken))
    form_token = csrf_token(client.get("/tokens").get_data(as_text=True))
    reply = client.post(f"/tokens/{row.id}/revoke", data={"csrf_token": form_token})
    assert reply.status_code == 302
    assert Api(client, token).get("/streams").status_code == 401
