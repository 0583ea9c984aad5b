"""Text no surface accepts (NUL characters, lone surrogates, over-long ids,
deeply nested JSON) gets a clear 400 in each surface's own format and changes
nothing: pages answer with the error page, the API with its JSON error, and
both media-server hooks with a refusal their engine understands. Every case
below used to reach PostgreSQL or the JSON parser and end in a 500."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pytest
from sqlalchemy import func, select

from studio.models import ApiToken, Broadcast, Stream, User
from tests.conftest import csrf_token, load_fixture

HOOK_TOKEN = "test-hook-token"
NUL = "a\x00b"
SURROGATE = "\ud800"
DEEP = "[" * 5000 + "]" * 5000


@dataclass(frozen=True)
class Case:
    """One bad request. `surface` picks the expected reply format; `body` is
    JSON text (str) or form fields (dict); `login` logs the owner in first."""

    name: str
    surface: str  # "page", "api", "srs" or "nginx"
    method: str
    path: str
    body: str | dict | None = None
    login: bool = False
    says: str = ""  # a phrase of the error message
    query: dict = field(default_factory=dict)


def srs_publish(**changes) -> str:
    """An SRS on_publish for the test stream, with some fields changed."""
    body = {**load_fixture("on_publish.json"), "stream": "sk_test123", "param": "?secret=abc"}
    body.update(changes)
    return json.dumps(body)


def nginx_publish(**changes) -> dict:
    form = {
        "call": "publish",
        "app": "live",
        "name": "sk_test123",
        "secret": "abc",
        "clientid": "17",
        "addr": "127.0.0.1",
    }
    form.update(changes)
    return form


CASES = [
    # pages
    Case("watch path NUL", "page", "GET", "/watch/%00", says="NUL"),
    Case("replays path NUL", "page", "GET", "/watch/ab%00cd/replays", says="NUL"),
    Case("login query NUL", "page", "GET", "/login", query={"next": NUL}, says="NUL"),
    Case("login email NUL", "page", "POST", "/login", {"email": NUL, "password": "x" * 12}),
    Case("login password NUL", "page", "POST", "/login", {"email": "a@b.co", "password": NUL}),
    Case("register email NUL", "page", "POST", "/register", {"email": NUL, "password": "x" * 12}),
    Case("new stream title NUL", "page", "POST", "/streams", {"title": NUL}, login=True),
    Case("token name NUL", "page", "POST", "/tokens", {"name": NUL}, login=True),
    Case("form field name NUL", "page", "POST", "/tokens", {"na\x00me": "x"}, login=True),
    Case("stream page path NUL", "page", "GET", "/streams/x%00y", login=True, says="NUL"),
    Case("status socket path NUL", "page", "GET", "/ws/streams/%00", says="NUL"),
    Case("ingest socket path NUL", "page", "GET", "/ws/ingest/%00", login=True, says="NUL"),
    # JSON API
    Case("api title NUL", "api", "POST", "/api/v1/streams", json.dumps({"title": NUL})),
    Case("api title escaped NUL", "api", "POST", "/api/v1/streams", '{"title": "a\\u0000"}'),
    Case(
        "api title surrogate",
        "api",
        "POST",
        "/api/v1/streams",
        '{"title": "\\ud800"}',
        says="surrogate",
    ),
    Case(
        "api key surrogate", "api", "POST", "/api/v1/streams", '{"\\udfff": "t"}', says="surrogate"
    ),
    Case("api deep nesting", "api", "POST", "/api/v1/streams", DEEP, says="nested"),
    Case(
        "api deep in a field",
        "api",
        "POST",
        "/api/v1/streams",
        '{"title": ' + DEEP + "}",
        says="nested",
    ),
    Case("api path NUL", "api", "GET", "/api/v1/streams/%00", says="NUL"),
    Case("api query NUL", "api", "GET", "/api/v1/streams", query={"q": NUL}, says="NUL"),
    Case(
        "api patch title NUL",
        "api",
        "PATCH",
        "/api/v1/streams/{stream}",
        json.dumps({"title": NUL}),
    ),
    # SRS hooks (JSON)
    Case("srs stream NUL", "srs", "POST", "/hooks/srs", srs_publish(stream=NUL)),
    Case("srs param NUL", "srs", "POST", "/hooks/srs", srs_publish(param="?secret=a\x00")),
    Case(
        "srs client_id 10000",
        "srs",
        "POST",
        "/hooks/srs",
        srs_publish(client_id="c" * 10000),
        says="client_id",
    ),
    Case(
        "srs server_id 200",
        "srs",
        "POST",
        "/hooks/srs",
        srs_publish(server_id="s" * 200),
        says="server_id",
    ),
    Case(
        "srs service_id 200",
        "srs",
        "POST",
        "/hooks/srs",
        srs_publish(service_id="s" * 200),
        says="service_id",
    ),
    Case("srs ip 200", "srs", "POST", "/hooks/srs", srs_publish(ip="1" * 200), says="ip"),
    Case("srs surrogate", "srs", "POST", "/hooks/srs", srs_publish(stream=SURROGATE)),
    Case("srs deep nesting", "srs", "POST", "/hooks/srs", DEEP, says="nested"),
    Case(
        "srs unpublish client_id 10000",
        "srs",
        "POST",
        "/hooks/srs",
        json.dumps({**load_fixture("on_unpublish.json"), "client_id": "c" * 10000}),
    ),
    Case("srs query NUL", "srs", "POST", "/hooks/srs", srs_publish(), query={"x": NUL}, says="NUL"),
    # nginx-rtmp hooks (form)
    Case("nginx name NUL", "nginx", "POST", "/hooks/nginx-rtmp", nginx_publish(name=NUL)),
    Case("nginx secret NUL", "nginx", "POST", "/hooks/nginx-rtmp", nginx_publish(secret=NUL)),
    Case(
        "nginx clientid 10000",
        "nginx",
        "POST",
        "/hooks/nginx-rtmp",
        nginx_publish(clientid="9" * 10000),
        says="clientid",
    ),
    Case(
        "nginx addr 200",
        "nginx",
        "POST",
        "/hooks/nginx-rtmp",
        nginx_publish(addr="1" * 200),
        says="addr",
    ),
]


def counts(db) -> dict[str, int]:
    db.session.expire_all()
    return {
        model.__tablename__: db.session.scalar(select(func.count()).select_from(model))
        for model in (User, Stream, ApiToken, Broadcast)
    }


@pytest.fixture()
def owner_setup(db, client, auth, make_user, make_stream, make_token):
    """A creator (logged in when a case asks) who owns the stream the hook
    cases publish to (`sk_test123`, key `abc`), and their API token."""
    user = make_user()
    stream = make_stream(owner=user)
    stream.public_id, stream.stream_key = "sk_test123", "abc"
    db.session.commit()
    return user, stream, make_token(user)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_text_is_refused_with_a_clear_400(case, db, client, auth, owner_setup):
    """Each surface refuses the request in its own format; nothing is stored."""
    user, stream, token = owner_setup
    headers: dict[str, str] = {}
    if case.login:
        assert auth.login(user.email).status_code == 302
    path = case.path.format(stream=stream.public_id)
    kwargs: dict = {"query_string": case.query, "headers": headers}
    if case.surface == "api":
        headers["Authorization"] = f"Bearer {token}"
    if case.surface in ("srs", "nginx"):
        kwargs["query_string"] = {"token": HOOK_TOKEN, **case.query}
    if isinstance(case.body, str):
        kwargs.update(data=case.body.encode(), content_type="application/json")
    elif isinstance(case.body, dict):
        form = dict(case.body)
        if case.surface == "page":
            form["csrf_token"] = csrf_token(client.get("/login").get_data(as_text=True))
        kwargs["data"] = form
    before = counts(db)

    reply = client.open(path, method=case.method, **kwargs)

    assert reply.status_code == 400, reply.get_data(as_text=True)[:500]
    if case.surface == "page":
        assert reply.mimetype == "text/html"
        text = reply.get_data(as_text=True)
        assert "<h1>400</h1>" in text
        assert case.says in text
    else:
        assert reply.is_json, reply.data[:200]
        body = reply.get_json()
        assert case.says in body["error"]
        if case.surface == "srs":
            assert body["code"] != 0  # SRS refuses on a non-zero code (and a non-200)
        if case.surface == "api":
            assert set(body) == {"error", "fields"}
    assert counts(db) == before
    assert stream.status == "created"


def test_nul_message_names_the_field(client, owner_setup):
    """The message tells the caller which input was wrong."""
    _, _, token = owner_setup
    reply = client.post(
        "/api/v1/streams",
        data=json.dumps({"title": "ok", "nested": {"deeper": NUL}}),
        content_type="application/json",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert reply.status_code == 400
    assert reply.get_json()["error"] == (
        "JSON field 'deeper' contains a NUL character, which is not allowed."
    )


def test_good_text_still_goes_through(db, client, owner_setup):
    """Brackets and escapes inside strings, non-ASCII text and a 64-character
    client id are accepted on every surface."""
    user, stream, token = owner_setup
    reply = client.post(
        "/api/v1/streams",
        data=json.dumps({"title": '[[[{{ "quoted" \\ 🎥 Ünïcode'}),
        content_type="application/json",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert reply.status_code == 201, reply.get_json()
    assert reply.get_json()["title"] == '[[[{{ "quoted" \\ 🎥 Ünïcode'
    reply = client.post(
        "/hooks/srs",
        query_string={"token": HOOK_TOKEN},
        data=srs_publish(client_id="c" * 64, server_id="s" * 64),
        content_type="application/json",
    )
    assert reply.status_code == 200 and reply.get_json() == {"code": 0}
    db.session.refresh(stream)
    assert stream.status == "live"
