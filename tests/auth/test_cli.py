"""Operator commands: `flask --app studio users create` and `tokens create`."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from studio.models import ApiToken, User
from tests.api.helpers import Api
from tests.conftest import PASSWORD
from tests.dbstate import snapshot


@pytest.fixture()
def cli(app, db):
    return app.test_cli_runner()


def test_users_create_stores_the_account(cli, db):
    """`users create` makes an account with a normalised email and a scrypt hash."""
    result = cli.invoke(
        args=["users", "create", "--email", "Op@Example.com", "--password", PASSWORD]
    )
    assert result.exit_code == 0, result.output
    assert "op@example.com" in result.output
    user = db.session.scalar(select(User))
    assert user.email == "op@example.com"
    assert user.password_hash.startswith("scrypt:")


def test_tokens_create_prints_a_token_that_authenticates_the_api(cli, db, client, make_user):
    """`tokens create` prints a token once; it authenticates the API as that user."""
    user = make_user("op@example.com")
    result = cli.invoke(args=["tokens", "create", "--email", "op@example.com"])
    assert result.exit_code == 0, result.output
    token = result.output.strip()
    assert token.startswith("lst_")
    row = db.session.scalar(select(ApiToken))
    assert row.user_id == user.id and token not in row.token_hash
    api = Api(client, token)
    created = api.post("/streams", {"title": "From the CLI"})
    assert created.status_code == 201
    assert [s["id"] for s in api.get("/streams").get_json()["streams"]] == [
        created.get_json()["id"]
    ]


@pytest.mark.parametrize(
    "args, message",
    [
        (["users", "create", "--email", "not-an-email", "--password", PASSWORD], "email"),
        (["users", "create", "--email", "", "--password", PASSWORD], "email"),
        (["users", "create", "--email", "a@example.com", "--password", "short"], "10 characters"),
        (["users", "create", "--email", "taken@example.com", "--password", PASSWORD], "exists"),
        (["users", "create", "--password", PASSWORD], "--email"),
        (["tokens", "create", "--email", "nobody@example.com"], "No user"),
        (["tokens", "create", "--email", "taken@example.com", "--name", "n" * 81], "80"),
    ],
)
def test_bad_input_exits_non_zero_with_a_message(cli, db, make_user, args, message):
    """A bad email, short password, taken email or unknown user: non-zero exit, a
    message saying why, and nothing written."""
    make_user("taken@example.com")
    before = snapshot(db)
    result = cli.invoke(args=args)
    assert result.exit_code != 0
    assert message in result.output
    assert snapshot(db) == before
