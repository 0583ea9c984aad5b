"""The OpenAPI document and the reference page describe the API that really runs."""

from __future__ import annotations

import html
import re

import pytest
from jsonschema import Draft202012Validator
from referencing import Registry, Resource

from studio import config as studio_config
from studio import create_app
from studio.api.schemas import PUBLIC_ID_PATTERN
from studio.streams.service import new_public_id
from tests.api.helpers import Api

PREFIX = "/api/v1"
IGNORED_METHODS = {"HEAD", "OPTIONS"}  # added by Flask to every rule
# The document and the reference page describe the API; they are not part of it.
UNDOCUMENTED = {("/openapi.json", "GET"), ("/docs", "GET")}


@pytest.fixture()
def spec(client):
    reply = client.get(f"{PREFIX}/openapi.json")
    assert reply.status_code == 200
    return reply.get_json()


def _rule_path(rule: str) -> str:
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.removeprefix(PREFIX))


def _api_rules(app):
    return [rule for rule in app.url_map.iter_rules() if rule.rule.startswith(PREFIX + "/")]


def test_document_and_url_map_list_the_same_operations(app, spec):
    """Every /api/v1 route and method is in the document, and every documented
    operation is a real route; only the document and the reference page themselves
    are left out."""
    routed = {
        (_rule_path(rule.rule), method)
        for rule in _api_rules(app)
        for method in rule.methods - IGNORED_METHODS
    }
    documented = {(path, method.upper()) for path, item in spec["paths"].items() for method in item}
    assert routed == documented | UNDOCUMENTED
    assert not documented & UNDOCUMENTED
    assert spec["servers"][0]["url"].endswith(PREFIX)


def test_each_documented_operation_is_served_by_its_view(app, spec):
    """An operation's id is the name of the view Flask routes it to, so the
    document describes the view that really answers."""
    for rule in _api_rules(app):
        for method in rule.methods - IGNORED_METHODS:
            if (_rule_path(rule.rule), method) in UNDOCUMENTED:
                continue
            operation = spec["paths"][_rule_path(rule.rule)][method.lower()]
            assert f"api.{operation['operationId']}" == rule.endpoint


# Operations anyone may call: the token is optional ({} in `security`).
PUBLIC_OPERATIONS = {("/streams/{stream_id}/chat", "get")}


def test_document_is_openapi_31_with_bearer_security(spec):
    """OpenAPI 3.1, a bearer scheme, and every stream operation requires it
    but the public ones (a stream's chat), where it is optional."""
    assert spec["openapi"] == "3.1.0"
    assert spec["components"]["securitySchemes"]["bearer"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "An API token, `lst_...`.",
    }
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if (path, method) in PUBLIC_OPERATIONS:
                assert operation["security"] == [{}, {"bearer": []}]
            else:
                assert operation["security"] == [{"bearer": []}]
            assert {"401", "429"} <= set(operation["responses"])


def test_schemas_are_valid_json_schema_and_every_ref_resolves(spec):
    """Each component is valid JSON Schema 2020-12 (what OpenAPI 3.1 uses) and every
    $ref in the document points at a component."""
    schemas = spec["components"]["schemas"]
    for schema in schemas.values():
        Draft202012Validator.check_schema(schema)
    refs = re.findall(r'"\$ref": "#/components/schemas/([^"]+)"', str(spec).replace("'", '"'))
    assert refs and set(refs) <= set(schemas)


def test_request_schemas_match_what_the_views_validate(spec):
    """The documented request bodies are the pydantic models the views validate with:
    unknown fields are refused in both."""
    create = spec["components"]["schemas"]["StreamCreate"]
    assert create["required"] == ["title"] and create["additionalProperties"] is False
    assert create["properties"]["visibility"]["enum"] == ["public", "unlisted", "private"]
    update = spec["components"]["schemas"]["StreamUpdate"]
    assert set(update["properties"]) == {"title", "disabled", "visibility", "reconnect_window"}
    assert update["additionalProperties"] is False and update["minProperties"] == 1


def test_stream_id_parameter_has_the_pattern_of_real_ids(spec, api, db, owner, make_stream):
    """Every `stream_id` path parameter is documented with the pattern stream ids
    really have; an id of that shape reaches the stream, and one that cannot be an
    id is the same 404 as an unknown one."""
    parameters = [
        param
        for path, item in spec["paths"].items()
        if path.startswith("/streams")
        for operation in item.values()
        for param in operation.get("parameters", [])
        if param["name"] == "stream_id"
    ]
    operations = [
        (path, method)
        for path, item in spec["paths"].items()
        for method in item
        if path.startswith("/streams/{stream_id}")
    ]
    assert len(parameters) == len(operations) > 5  # each stream operation names it once
    for param in parameters:
        assert (param["name"], param["in"], param["required"]) == ("stream_id", "path", True)
        assert param["schema"]["type"] == "string"
        assert param["schema"]["pattern"] == PUBLIC_ID_PATTERN
        assert param["description"]
    assert all(re.fullmatch(PUBLIC_ID_PATTERN, new_public_id()) for _ in range(50))
    stream = make_stream(owner)
    assert re.fullmatch(PUBLIC_ID_PATTERN, stream.public_id)
    assert api.get(f"/streams/{stream.public_id}").status_code == 200
    for bad_id in (stream.public_id.upper(), stream.public_id + "0", "a-b" * 6):
        reply = api.get(f"/streams/{bad_id}")
        assert reply.status_code == 404
        assert reply.get_json() == {"error": "Stream not found.", "fields": {}}


def test_webhook_id_parameter_is_a_documented_integer(spec):
    """Every `webhook_id` path parameter is a required integer (delete,
    deliveries, test)."""
    parameters = [
        param
        for path, item in spec["paths"].items()
        if path.startswith("/webhooks/")
        for operation in item.values()
        for param in operation.get("parameters", [])
    ]
    assert len(parameters) == 3
    for param in parameters:
        assert (param["name"], param["in"], param["required"]) == ("webhook_id", "path", True)
        assert param["schema"]["type"] == "integer"


def _validator(spec: dict, name: str) -> Draft202012Validator:
    resource = Resource.from_contents(
        {"$schema": "https://json-schema.org/draft/2020-12/schema", **spec}
    )
    refs = Registry().with_resource("urn:spec", resource)
    schema = {"$ref": f"urn:spec#/components/schemas/{name}"}
    return Draft202012Validator(schema, registry=refs)


def _response_schema(spec: dict, path: str, method: str, status: int) -> str:
    response = spec["paths"][path][method]["responses"][str(status)]
    return response["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]


@pytest.mark.parametrize("engine", ["nginx-rtmp", "srs"])
def test_real_responses_match_the_documented_schemas(
    spec, app, client, make_user, make_token, use_engine, engine
):
    """What the API answers (success and error) validates against what the document
    says it answers, on either media engine (WebRTC URLs or null)."""
    use_engine(engine)
    api = Api(client, make_token(make_user()))
    created = api.post("/streams", {"title": "Documented"})
    stream_path = f"/streams/{created.get_json()['id']}"
    calls = [
        (created, "/streams", "post"),
        (api.get("/streams"), "/streams", "get"),
        (api.get(stream_path), "/streams/{stream_id}", "get"),
        (api.patch(stream_path, {"disabled": True}), "/streams/{stream_id}", "patch"),
        (api.post(stream_path + "/rotate-key"), "/streams/{stream_id}/rotate-key", "post"),
        (api.get(stream_path + "/broadcasts"), "/streams/{stream_id}/broadcasts", "get"),
        (api.patch(stream_path, {"x": 1}), "/streams/{stream_id}", "patch"),
        (api.get("/streams/nope"), "/streams/{stream_id}", "get"),
        (Api(client, None).get("/streams"), "/streams", "get"),
    ]
    for reply, path, method in calls:
        name = _response_schema(spec, path, method, reply.status_code)
        _validator(spec, name).validate(reply.get_json())
    assert api.delete(stream_path).status_code in {
        int(code) for code in spec["paths"]["/streams/{stream_id}"]["delete"]["responses"]
    }


def test_reference_page_lists_every_operation_with_a_curl_example(client, spec):
    """/api/v1/docs is server-rendered HTML: each documented operation with its
    parameters, bodies, responses and a curl example; no scripts."""
    reply = client.get(f"{PREFIX}/docs")
    assert reply.status_code == 200
    assert reply.mimetype == "text/html"
    page = reply.get_data(as_text=True)
    assert "<script" not in page
    for path, item in spec["paths"].items():
        for method in item:
            assert f"<code>{method.upper()} {PREFIX}{path}</code>" in page
            assert f"curl -X {method.upper()}" in page
    for name in spec["components"]["schemas"]:
        assert f'id="schema-{name}"' in page
    assert "Authorization: Bearer $STUDIO_TOKEN" in page
    assert f"string matching {PUBLIC_ID_PATTERN}" in page  # the stream_id parameter
    assert """-d '{"title": "Friday night show"}'""" in html.unescape(page)


def test_rate_limited_reply_matches_the_documented_429(app, spec, redis, make_user, make_token):
    """Past the per-token limit the API answers the documented 429 (Error body)."""
    limited = create_app(
        studio_config.testing(
            {
                "SQLALCHEMY_DATABASE_URI": app.config["SQLALCHEMY_DATABASE_URI"],
                "REDIS_URL": app.config["REDIS_URL"],
                "RATELIMIT_ENABLED": True,
                "RATELIMIT_API": "1 per minute",
            }
        )
    )
    api = Api(limited.test_client(), make_token(make_user()))
    assert api.get("/streams").status_code == 200
    refused = api.get("/streams")
    assert refused.status_code == 429
    assert "Retry-After" in refused.headers
    _validator(spec, _response_schema(spec, "/streams", "get", 429)).validate(refused.get_json())


def test_stream_schema_says_which_urls_an_engine_may_leave_out(spec):
    """The document tells clients that the WebRTC URLs may be null and lists
    the ingest protocols and playback modes a stream can report."""
    schemas = spec["components"]["schemas"]
    ingest, playback = schemas["Ingest"]["properties"], schemas["Playback"]["properties"]
    for name in ("webrtc_url", "whip_url"):
        assert {"type": "null"} in ingest[name]["anyOf"], name
        assert "null when" in ingest[name]["description"]
    assert ingest["protocols"]["items"]["enum"] == ["rtmp", "webrtc", "srt"]
    assert playback["modes"]["items"]["enum"] == ["hls", "webrtc"]
    assert {"type": "null"} in playback["whep_url"]["anyOf"]
    assert "null when" in playback["whep_url"]["description"]
    assert {"modes", "hls_url", "whep_url", "watch_url"} <= set(schemas["Playback"]["required"])
    assert {"protocols", "webrtc_url", "whip_url", "srt_url"} <= set(schemas["Ingest"]["required"])


def test_reference_page_shows_the_ingest_protocols_and_nullable_urls(client):
    """The reference page spells out the values `protocols` and `modes` take and
    that the WebRTC URLs may be null."""
    page = html.unescape(" ".join(client.get(f"{PREFIX}/docs").get_data(as_text=True).split()))

    def row(name: str, kind: str) -> str:
        return f'<td data-label="Field"><code>{name}</code></td><td data-label="Type">{kind}</td>'

    assert row("protocols", 'array of "rtmp" | "webrtc" | "srt"') in page
    assert row("modes", 'array of "hls" | "webrtc"') in page
    assert row("whep_url", "string or null") in page
    assert row("whip_url", "string or null") in page


def test_stream_and_broadcast_schemas_document_their_thumbnails(spec):
    """Streams and broadcasts have a thumbnail_url that the document marks as
    always present and null until the thumbnail exists."""
    schemas = spec["components"]["schemas"]
    for name in ("StreamOut", "BroadcastOut"):
        field = schemas[name]["properties"]["thumbnail_url"]
        assert {"type": "null"} in field["anyOf"] and {"type": "string"} in field["anyOf"], name
        assert "thumbnail_url" in schemas[name]["required"], name
        assert "JPEG" in field["description"], name


def test_viewer_counts_are_documented_integers(spec):
    """`viewers` on a stream and `peak_viewers` on a broadcast are required,
    non-negative integers with a description."""
    schemas = spec["components"]["schemas"]
    for name, prop in (("StreamOut", "viewers"), ("BroadcastOut", "peak_viewers")):
        field = schemas[name]["properties"][prop]
        assert field["type"] == "integer" and field["minimum"] == 0, name
        assert prop in schemas[name]["required"], name
        assert "watching" in field["description"], name
