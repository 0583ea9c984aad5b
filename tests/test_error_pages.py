"""The error page survives the error: after a database error it is still
rendered (with the logged-in user's menu), never an empty 500."""

from __future__ import annotations

from studio import config as studio_config
from studio import create_app
from studio.extensions import db as _db
from studio.models import ApiToken
from tests.conftest import Auth


def app_with_failing_view(app):
    """The studio on the test database, plus one page whose insert fails in
    PostgreSQL (a name longer than its column), as an unforeseen bug would."""
    failing = create_app(
        studio_config.testing(
            {
                "SQLALCHEMY_DATABASE_URI": app.config["SQLALCHEMY_DATABASE_URI"],
                "REDIS_URL": app.config["REDIS_URL"],
                "PROPAGATE_EXCEPTIONS": False,
            }
        )
    )

    @failing.get("/failing-insert")
    def failing_insert():
        _db.session.add(ApiToken(user_id=1, name="n" * 500, token_hash="h", prefix="p"))
        _db.session.flush()
        return "unreachable"

    return failing


def test_error_page_after_a_database_error(app, db, make_user):
    """A logged-in creator whose request hits a database error gets the 500
    error page with their menu, not an empty reply."""
    user = make_user()
    client = app_with_failing_view(app).test_client()
    assert Auth(client).login(user.email).status_code == 302

    reply = client.get("/failing-insert")

    assert reply.status_code == 500
    assert reply.mimetype == "text/html"
    page = reply.get_data(as_text=True)
    assert "<h1>500</h1>" in page
    assert user.email in page  # base.html read the user after the rollback
