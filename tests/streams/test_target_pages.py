"""The stream page's Multistream section: add a target (presets, errors),
enable or disable it, remove it; keys never shown again."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from studio import secretbox
from studio.models import Target
from studio.streams import targets
from tests.dbstate import snapshot

EMAIL = "carol@example.com"
KEY = "live_987654321_secretsecretABCD"


@pytest.fixture()
def carol(make_user):
    return make_user(EMAIL)


@pytest.fixture()
def page(auth, carol, make_stream):
    """Carol logged in, with a stream: (path of its page, the stream)."""
    assert auth.login(EMAIL).status_code == 302
    stream = make_stream(carol, "Simulcast show")
    return f"/streams/{stream.public_id}", stream


def form(auth, path: str, **fields) -> dict:
    values = {"preset": "twitch", "name": "Twitch", "url": "rtmp://live.twitch.tv/app", "key": KEY}
    values["enabled"] = "y"
    return {"csrf_token": auth.form_token(path)} | values | fields


def test_the_section_offers_the_presets(client, page):
    path, _ = page
    html = client.get(path).get_data(as_text=True)
    assert 'data-testid="multistream"' in html
    assert "No targets yet" in html
    for url in (
        "rtmps://a.rtmps.youtube.com:443/live2",
        "rtmp://live.twitch.tv/app",
        "rtmps://live-api-s.facebook.com:443/rtmp",
    ):
        assert url in html


def test_adding_a_target_lists_it_with_the_last_characters_of_its_key(app, auth, client, db, page):
    """The form adds an enabled target; the page shows its state and ••••ABCD,
    never the key, which is stored encrypted."""
    path, stream = page
    reply = client.post(f"{path}/targets", data=form(auth, path))
    assert reply.status_code == 302
    assert reply.headers["Location"].endswith(f"{path}#multistream")
    html = client.get(path).get_data(as_text=True)
    assert "••••ABCD" in html and KEY not in html
    assert re.search(r'data-testid="target-state">stopped<', html)
    row = db.session.scalar(select(Target))
    assert (row.name, row.url, row.enabled) == ("Twitch", "rtmp://live.twitch.tv/app", True)
    assert secretbox.from_config(app.config).open(row.key_encrypted) == KEY
    rows = client.get(f"{path}/targets")
    assert rows.headers["Cache-Control"] == "no-store"
    assert "••••ABCD" in rows.get_data(as_text=True)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"url": "http://example.com/live"}, "Use an rtmp:// or rtmps:// URL."),
        ({"url": "rtmp://"}, "The URL needs a host."),
        ({"key": "has space"}, "No spaces or control characters."),
        ({"key": ""}, "This field is required."),
        ({"name": "n" * 81}, "Field cannot be longer than 80 characters."),
    ],
)
def test_a_bad_target_is_400_with_the_reason_and_changes_nothing(
    auth, client, db, page, fields, message
):
    path, _ = page
    before = snapshot(db)
    reply = client.post(f"{path}/targets", data=form(auth, path, **fields))
    assert reply.status_code == 400
    assert message in reply.get_data(as_text=True)
    assert snapshot(db) == before


def test_the_limit_is_shown_on_the_form(app, auth, client, db, page, monkeypatch):
    path, _ = page
    monkeypatch.setitem(app.config, "MAX_TARGETS", 1)
    assert client.post(f"{path}/targets", data=form(auth, path)).status_code == 302
    reply = client.post(f"{path}/targets", data=form(auth, path, name="Second"))
    assert reply.status_code == 400
    assert "A stream has at most 1 targets." in reply.get_data(as_text=True)


def test_disable_enable_and_remove(app, auth, client, db, page):
    path, stream = page
    box = secretbox.from_config(app.config)
    target = targets.add_target(
        db.session, stream, box, name="YT", url="rtmps://a.rtmps.youtube.com:443/live2", key=KEY
    )
    db.session.commit()
    action = f"{path}/targets/{target.id}"
    token = auth.form_token(path)
    assert (
        client.post(f"{action}/enabled", data={"csrf_token": token, "enabled": "0"}).status_code
        == 302
    )
    db.session.refresh(target)
    assert target.enabled is False
    assert 'data-testid="enable-target"' in client.get(path).get_data(as_text=True)
    assert (
        client.post(f"{action}/enabled", data={"csrf_token": token, "enabled": "x"}).status_code
        == 400
    )
    assert (
        client.post(f"{action}/enabled", data={"csrf_token": token, "enabled": "1"}).status_code
        == 302
    )
    db.session.refresh(target)
    assert target.enabled is True
    assert client.post(f"{action}/delete", data={"csrf_token": token}).status_code == 302
    assert db.session.scalar(select(Target)) is None
    assert client.post(f"{action}/delete", data={"csrf_token": token}).status_code == 404


def test_a_retrying_target_shows_its_last_error(app, client, db, page):
    path, stream = page
    box = secretbox.from_config(app.config)
    target = targets.add_target(
        db.session, stream, box, name="Dead", url="rtmp://dead.example.com/live", key=KEY
    )
    targets.record_state(db.session, target.id, "retrying", "Connection refused")
    db.session.commit()
    html = client.get(f"{path}/targets").get_data(as_text=True)
    assert 'data-testid="target-state">retrying<' in html
    assert 'data-testid="target-error">Connection refused<' in html
