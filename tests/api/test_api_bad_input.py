"""Bad input to the API: a 4xx with a clear JSON message, and nothing changes."""

from __future__ import annotations

import pytest

from tests.dbstate import snapshot


@pytest.fixture()
def stream(owner, make_stream):
    return make_stream(owner, "Original")


@pytest.mark.parametrize(
    "body, field, message",
    [
        ({}, "title", "required"),
        ({"title": 5}, "title", "valid string"),
        ({"title": None}, "title", "valid string"),
        ({"title": ["a"]}, "title", "valid string"),
        ({"title": ""}, "title", "title is required"),
        ({"title": "   "}, "title", "title is required"),
        ({"title": "x" * 121}, "title", "At most 120"),
        ({"title": "ok", "owner_id": 2}, "owner_id", "Unknown field"),
        ({"title": "ok", "stream_key": "mine"}, "stream_key", "Unknown field"),
        ({"title": "ok", "reconnect_window": -1}, "reconnect_window", "greater than or equal to 0"),
        (
            {"title": "ok", "reconnect_window": 1801},
            "reconnect_window",
            "less than or equal to 1800",
        ),
        ({"title": "ok", "reconnect_window": "60"}, "reconnect_window", "valid integer"),
        ({"title": "ok", "reconnect_window": 1.5}, "reconnect_window", "valid integer"),
        ({"title": "ok", "reconnect_window": None}, "reconnect_window", "valid integer"),
        ({"title": "ok", "reconnect_window": 10**30}, "reconnect_window", "less than or equal"),
    ],
)
def test_create_with_invalid_fields_is_400_per_field(api, db, stream, body, field, message):
    """POST /streams validates the body: exact types, known fields, title rules;
    each problem is reported under its field and no stream is created."""
    before = snapshot(db)
    reply = api.post("/streams", body)
    assert reply.status_code == 400
    error = reply.get_json()
    assert error["error"]
    assert message in error["fields"][field]
    assert snapshot(db) == before


@pytest.mark.parametrize(
    "body, field, message",
    [
        ({}, "body", "at least one of: title, disabled, visibility, reconnect_window"),
        ({"disabled": "true"}, "disabled", "valid boolean"),
        ({"disabled": 1}, "disabled", "valid boolean"),
        ({"disabled": None}, "disabled", "valid boolean"),
        ({"title": 7}, "title", "valid string"),
        ({"title": None}, "title", "valid string"),
        ({"title": ""}, "title", "title is required"),
        (
            {"status": "live"},
            "status",
            "Unknown field (allowed: title, disabled, reconnect_window, visibility)",
        ),
        ({"reconnect_window": True}, "reconnect_window", "valid integer"),
        ({"reconnect_window": 3600}, "reconnect_window", "less than or equal to 1800"),
        ({"reconnect_window": 0, "title": "   "}, "title", "title is required"),
        ({"stream_key": "chosen"}, "stream_key", "Unknown field"),
        # A valid change beside an invalid one: neither is applied.
        ({"disabled": True, "title": "   "}, "title", "title is required"),
        ({"title": "Fine", "disabled": "yes"}, "disabled", "valid boolean"),
        ({}, "body", "Give at least one of: title, disabled, visibility, reconnect_window."),
        ({"title": "Live \u202egnp.exe"}, "title", "cannot contain text direction overrides"),
        ({"title": "two\nlines"}, "title", "cannot contain control characters"),
        ({"title": "bell\x07"}, "title", "cannot contain control characters"),
    ],
)
def test_patch_with_invalid_fields_is_400_and_atomic(api, db, stream, body, field, message):
    """PATCH /streams/{id} refuses bad fields with per-field errors and applies
    nothing, not even the valid part of the body."""
    before = snapshot(db)
    reply = api.patch(f"/streams/{stream.public_id}", body)
    assert reply.status_code == 400
    assert message in reply.get_json()["fields"][field]
    assert not reply.get_json()["fields"][field].endswith("..")
    assert snapshot(db) == before


@pytest.mark.parametrize("method, path", [("POST", "/streams"), ("PATCH", "/streams/{id}")])
@pytest.mark.parametrize(
    "data, content_type, message",
    [
        ("title=Hello", "application/x-www-form-urlencoded", "Content-Type: application/json"),
        ('{"title": "Hello"}', "text/plain", "Content-Type: application/json"),
        ('{"title": "Hello"}', None, "Content-Type: application/json"),
        ("", "application/json", "must be a JSON object"),
        ('{"title": ', "application/json", "not valid JSON"),
        ("{'title': 'x'}", "application/json", "not valid JSON"),
        ('["Hello"]', "application/json", "must be a JSON object"),
        ('"Hello"', "application/json", "must be a JSON object"),
        ("null", "application/json", "must be a JSON object"),
        (b"\xff\xfe{}", "application/json", "not valid JSON"),
        # A JSON string that holds an object is still a string.
        ('"{\\"title\\": \\"Hello\\"}"', "application/json", "must be a JSON object"),
        # JSON is UTF-8: a byte that is not is refused, not replaced.
        (b'{"title": "Hello \xff"}', "application/json", "not valid JSON"),
    ],
)
def test_a_body_that_is_not_a_json_object_is_400(
    api, db, stream, method, path, data, content_type, message
):
    """A body that is not a JSON object sent as application/json is refused with a
    message saying what to send."""
    before = snapshot(db)
    kwargs = {"data": data}
    if content_type:
        kwargs["content_type"] = content_type
    reply = api.call(method, path.format(id=stream.public_id), **kwargs)
    assert reply.status_code == 400
    assert message in reply.get_json()["error"]
    assert snapshot(db) == before


@pytest.mark.parametrize(
    "method, path, body",
    [
        ("GET", "/streams/{id}", None),
        ("PATCH", "/streams/{id}", {"title": "x"}),
        ("DELETE", "/streams/{id}", None),
        ("POST", "/streams/{id}/rotate-key", None),
        ("POST", "/streams/{id}/end", None),
        ("GET", "/streams/{id}/broadcasts", None),
    ],
)
@pytest.mark.parametrize("stream_id", ["doesnotexist0000", "x" * 300, "%27%20OR%201=1--"])
def test_unknown_stream_is_404(api, db, stream, method, path, body, stream_id):
    """An id that names none of the caller's streams is 404 with a JSON message."""
    before = snapshot(db)
    reply = api.call(method, path.format(id=stream_id), body)
    assert reply.status_code == 404
    assert reply.get_json() == {"error": "Stream not found.", "fields": {}}
    assert snapshot(db) == before


@pytest.mark.parametrize(
    "method, path, allowed",
    [
        ("PUT", "/streams", {"GET", "POST"}),
        ("DELETE", "/streams", {"GET", "POST"}),
        ("POST", "/streams/{id}", {"GET", "PATCH", "DELETE"}),
        ("GET", "/streams/{id}/rotate-key", {"POST"}),
        ("DELETE", "/streams/{id}/broadcasts", {"GET"}),
    ],
)
def test_wrong_method_is_405_json(api, db, stream, method, path, allowed):
    """A method a route does not have is 405 with a JSON message and an Allow header."""
    before = snapshot(db)
    reply = api.call(method, path.format(id=stream.public_id))
    assert reply.status_code == 405
    assert reply.get_json()["error"]
    assert allowed <= {m.strip() for m in reply.headers["Allow"].split(",")}
    assert snapshot(db) == before


def test_unknown_path_is_404_json(api):
    """A path the API does not have is 404 with a JSON message, not an HTML page."""
    reply = api.get("/nothing-here")
    assert reply.status_code == 404
    assert reply.is_json and reply.get_json()["error"]
