"""Visibility and share links in the JSON API."""

from __future__ import annotations

import pytest

from studio.models import ShareLink, Stream
from studio.streams import access
from tests.api.helpers import Api


def test_create_and_patch_carry_visibility(api, db):
    reply = api.post("/streams", {"title": "Hidden", "visibility": "private"})
    assert reply.status_code == 201
    body = reply.get_json()
    assert body["visibility"] == "private"
    assert body["playback"]["hls_url"] == (
        f"https://cdn.studio.test/private/{body['id']}/index.m3u8"
    )
    reply = api.patch(f"/streams/{body['id']}", {"visibility": "unlisted"})
    assert reply.status_code == 200
    assert reply.get_json()["visibility"] == "unlisted"
    assert reply.get_json()["playback"]["hls_url"].startswith("https://cdn.studio.test/live/")
    assert api.get(f"/streams/{body['id']}").get_json()["visibility"] == "unlisted"


@pytest.mark.parametrize("value", ["secret", "PUBLIC", "", None, 1, True, ["private"], "x" * 5000])
def test_a_bad_visibility_is_400_and_changes_nothing(api, db, make_stream, owner, value):
    stream = make_stream(owner)
    reply = api.patch(f"/streams/{stream.public_id}", {"visibility": value, "title": "New"})
    assert reply.status_code == 400
    assert "visibility" in reply.get_json()["fields"]
    db.session.expire_all()
    row = db.session.get(Stream, stream.id)
    assert (row.visibility, row.title) == ("public", "My stream")
    reply = api.post("/streams", {"title": "x", "visibility": value})
    assert reply.status_code == 400 and "visibility" in reply.get_json()["fields"]


def test_share_links_are_created_listed_and_revoked(api, db, make_stream, owner):
    stream = make_stream(owner)
    api.patch(f"/streams/{stream.public_id}", {"visibility": "private"})
    reply = api.post(f"/streams/{stream.public_id}/share-links")
    assert reply.status_code == 201
    link = reply.get_json()
    assert set(link) == {"id", "url", "created_at"}
    token = db.session.get(ShareLink, link["id"]).token
    assert link["url"] == f"https://studio.test/watch/{stream.public_id}?share={token}"
    listed = api.get(f"/streams/{stream.public_id}/share-links").get_json()
    assert listed == {"share_links": [link]}
    assert api.delete(f"/streams/{stream.public_id}/share-links/{link['id']}").status_code == 204
    assert api.get(f"/streams/{stream.public_id}/share-links").get_json() == {"share_links": []}
    reply = api.delete(f"/streams/{stream.public_id}/share-links/{link['id']}")
    assert reply.status_code == 404
    assert reply.get_json()["error"] == "Share link not found."


def test_share_links_are_bounded(api, db, make_stream, owner):
    stream = make_stream(owner)
    for _ in range(access.MAX_SHARE_LINKS):
        assert api.post(f"/streams/{stream.public_id}/share-links").status_code == 201
    reply = api.post(f"/streams/{stream.public_id}/share-links")
    assert reply.status_code == 400
    assert "at most" in reply.get_json()["error"]


def test_someone_elses_share_links_are_404(client, api, db, make_stream, make_user, make_token):
    theirs = make_stream(make_user(), "Theirs")
    link = access.create_share_link(db.session, theirs)
    db.session.commit()
    for method, path in (
        ("GET", f"/streams/{theirs.public_id}/share-links"),
        ("POST", f"/streams/{theirs.public_id}/share-links"),
        ("DELETE", f"/streams/{theirs.public_id}/share-links/{link.id}"),
    ):
        reply = api.call(method, path)
        assert (path, reply.status_code) == (path, 404)
    assert access.list_share_links(db.session, theirs) == [link]
    # A link of another stream is not found through mine either.
    mine = Api(client, api.token)
    stream = api.post("/streams", {"title": "Mine"}).get_json()
    reply = mine.delete(f"/streams/{stream['id']}/share-links/{link.id}")
    assert reply.status_code == 404
    for bad in ("0", "-1", "99999999999999", "abc"):
        reply = mine.delete(f"/streams/{stream['id']}/share-links/{bad}")
        assert reply.status_code in (400, 404), bad
    assert access.list_share_links(db.session, theirs) == [link]


def test_openapi_documents_visibility_and_share_links(api):
    spec = api.get("/openapi.json").get_json()
    stream = spec["components"]["schemas"]["StreamOut"]
    assert stream["properties"]["visibility"]["enum"] == ["public", "unlisted", "private"]
    assert "visibility" in stream["required"]
    paths = spec["paths"]
    assert set(paths["/streams/{stream_id}/share-links"]) == {"get", "post"}
    assert set(paths["/streams/{stream_id}/share-links/{link_id}"]) == {"delete"}
