"""Creator pages: only the owner reaches a stream, every change needs the form
token, and bad input changes nothing."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from studio.models import Stream, utcnow
from tests.dbstate import snapshot

ALICE = "alice@example.com"


@pytest.fixture()
def alice(make_user):
    return make_user(ALICE)


@pytest.fixture()
def bob_stream(make_user, make_stream):
    return make_stream(make_user("bob@example.com"), "Bob's stream")


@pytest.fixture()
def logged_in(auth, alice):
    """The test client, logged in as Alice."""
    assert auth.login(ALICE).status_code == 302
    return auth


def stream_rules(app, method: str) -> list[str]:
    """Every creator-page route about one stream that answers `method`."""
    return sorted(
        rule.rule.replace("<int:target_id>", "1").replace("<int:link_id>", "1")
        for rule in app.url_map.iter_rules()
        if rule.endpoint.startswith("streams.")
        and "<public_id>" in rule.rule
        and method in rule.methods
    )


def test_the_matrix_covers_every_stream_page(app):
    """The page routes the matrix below walks include every known stream page."""
    assert {"/streams/<public_id>", "/streams/<public_id>/key"} <= set(stream_rules(app, "GET"))
    assert {
        "/streams/<public_id>/title",
        "/streams/<public_id>/rotate-key",
        "/streams/<public_id>/disable",
        "/streams/<public_id>/delete",
    } <= set(stream_rules(app, "POST"))


def test_non_owner_gets_404_on_every_stream_page(app, client, db, logged_in, bob_stream):
    """Alice cannot see Bob's stream page, its key, or any other page of it: 404,
    the same as a stream that does not exist, and Bob's key is nowhere."""
    for rule in stream_rules(app, "GET"):
        reply = client.get(rule.replace("<public_id>", bob_stream.public_id))
        missing = client.get(rule.replace("<public_id>", "doesnotexist0000"))
        assert (rule, reply.status_code) == (rule, 404)
        assert reply.get_data() == missing.get_data()
        assert bob_stream.stream_key not in reply.get_data(as_text=True)


def test_non_owner_cannot_change_a_stream_through_the_pages(app, client, db, logged_in, bob_stream):
    """Alice's valid form posts to Bob's title/rotate/disable/delete pages are 404
    and Bob's stream is exactly as before."""
    token = logged_in.form_token("/")
    form = {"csrf_token": token, "title": "Hijacked", "disabled": "1"}
    before = snapshot(db)
    for rule in stream_rules(app, "POST"):
        path = rule.replace("<public_id>", bob_stream.public_id).replace("<int:moderator_id>", "1")
        reply = client.post(path, data=form)
        assert (rule, reply.status_code) == (rule, 404)
        assert bob_stream.stream_key not in reply.get_data(as_text=True)
    assert snapshot(db) == before


def test_logged_out_visitor_is_sent_to_login(app, client, db, bob_stream):
    """Without a session every stream page redirects to the login page and changes nothing."""
    before = snapshot(db)
    for method in ("GET", "POST"):
        for rule in stream_rules(app, method):
            path = rule.replace("<public_id>", bob_stream.public_id)
            reply = client.open(path.replace("<int:moderator_id>", "1"), method=method)
            if method == "POST" and reply.status_code == 400:
                continue  # the missing form token is refused first: also no change
            assert reply.status_code == 302 and "/login" in reply.headers["Location"]
    assert snapshot(db) == before


def page_posts(app, public_id: str) -> list[str]:
    """Every form POST of the studio's pages (auth and streams)."""
    paths = []
    for rule in app.url_map.iter_rules():
        if "POST" in rule.methods and rule.endpoint.split(".")[0] in {"auth", "streams"}:
            path = rule.rule.replace("<public_id>", public_id)
            for name in ("token_id", "moderator_id", "target_id", "link_id"):
                path = path.replace(f"<int:{name}>", "1")
            paths.append(path)
    return sorted(paths)


@pytest.mark.parametrize("csrf", [None, "", "forged-token"])
def test_every_page_post_without_a_valid_form_token_is_400(
    app, client, db, logged_in, alice, make_stream, make_token, csrf
):
    """A POST without its form token (or with a wrong one) is 400 with a message and
    changes nothing (login, register, logout, tokens and every stream action)."""
    stream = make_stream(alice)
    make_token(alice)
    before = snapshot(db)
    data = {"title": "Changed", "disabled": "1", "name": "x", "email": ALICE}
    if csrf is not None:
        data["csrf_token"] = csrf
    posts = page_posts(app, stream.public_id)
    assert "/streams" in posts and "/login" in posts and "/tokens" in posts
    for path in posts:
        reply = client.post(path, data=data | {"password": "correct horse battery"})
        assert (path, reply.status_code) == (path, 400)
        assert "security token" in reply.get_data(as_text=True)
    assert snapshot(db) == before
    assert client.get(f"/streams/{stream.public_id}").status_code == 200  # still logged in


@pytest.mark.parametrize("title", ["", "   ", "x" * 121, "Live \u202egnp.exe"])
def test_create_with_a_bad_title_is_400(client, db, logged_in, title):
    """Creating a stream with an empty or too long title is 400 with a message; no row."""
    before = snapshot(db)
    reply = client.post("/streams", data={"csrf_token": logged_in.form_token(), "title": title})
    assert reply.status_code == 400
    page = reply.get_data(as_text=True)
    assert any(m in page for m in ("This field is required.", "120 characters", "cannot contain"))
    assert snapshot(db) == before


@pytest.mark.parametrize("title", ["", "   ", "x" * 121, "Live \u202egnp.exe"])
def test_rename_with_a_bad_title_is_400(client, db, logged_in, alice, make_stream, title):
    """Renaming to an empty or too long title is 400 with a message; the title stays."""
    stream = make_stream(alice, "Keep me")
    path = f"/streams/{stream.public_id}"
    before = snapshot(db)
    reply = client.post(
        path + "/title", data={"csrf_token": logged_in.form_token(path), "title": title}
    )
    assert reply.status_code == 400
    page = reply.get_data(as_text=True)
    assert any(m in page for m in ("This field is required.", "120 characters", "cannot contain"))
    assert snapshot(db) == before


@pytest.mark.parametrize("value", ["", "maybe", "true"])
def test_disable_with_a_bad_value_is_400(client, db, logged_in, alice, make_stream, value):
    """The disable form takes disabled=1 or 0; anything else is 400 and changes nothing."""
    stream = make_stream(alice)
    path = f"/streams/{stream.public_id}"
    before = snapshot(db)
    reply = client.post(
        path + "/disable", data={"csrf_token": logged_in.form_token(path), "disabled": value}
    )
    assert reply.status_code == 400
    assert "disabled=1" in reply.get_data(as_text=True)
    assert snapshot(db) == before


def test_owner_actions_through_the_pages(client, db, logged_in, alice):
    """The owner creates, renames, disables, enables, rotates and deletes through the pages."""
    token = logged_in.form_token()
    reply = client.post("/streams", data={"csrf_token": token, "title": "Show"})
    assert reply.status_code == 302
    stream = db.session.scalar(select(Stream).where(Stream.owner_id == alice.id))
    path = f"/streams/{stream.public_id}"
    assert reply.headers["Location"] == path
    old_key = stream.stream_key

    def post(action: str, **data):
        reply = client.post(f"{path}/{action}", data={"csrf_token": token, **data})
        if action != "delete":
            db.session.refresh(stream)
        return reply

    assert post("title", title="Renamed").status_code == 302 and stream.title == "Renamed"
    assert post("disable", disabled="1").status_code == 302 and stream.disabled is True
    assert post("disable", disabled="0").status_code == 302 and stream.disabled is False
    assert post("rotate-key").status_code == 302 and stream.stream_key != old_key
    assert post("delete").status_code == 302
    db.session.rollback()
    assert db.session.scalar(select(Stream).where(Stream.owner_id == alice.id)) is None


def test_key_endpoint_gives_the_owner_the_current_key_uncached(
    client, db, logged_in, alice, make_stream
):
    """GET /streams/<id>/key returns the owner's current key with Cache-Control: no-store."""
    stream = make_stream(alice)
    reply = client.get(f"/streams/{stream.public_id}/key")
    assert reply.status_code == 200
    assert reply.get_json()["stream_key"] == f"{stream.public_id}?secret={stream.stream_key}"
    assert reply.headers["Cache-Control"] == "no-store"


def test_stream_list_shows_thumbnails_once_written(client, db, auth, make_user, make_stream):
    """The creator's list shows a stream's live thumbnail from the CDN once
    the thumbnail job has written one, and nothing before."""
    owner = make_user()
    fresh, shown = make_stream(owner=owner), make_stream(owner=owner)
    shown.thumbnail_at = utcnow()
    db.session.commit()
    auth.login(owner.email)
    html = client.get("/streams").get_data(as_text=True)
    assert f'src="https://cdn.studio.test/live/{shown.public_id}/thumbnail.jpg"' in html
    assert f"/live/{fresh.public_id}/thumbnail.jpg" not in html
