"""A pool of two media nodes, each an SRS API test double
(tests/srs_api_double.py): publishes land on the node their callback names,
drops and stats reach that node's engine, a dead node ends only its own
streams, a drained node refuses publishers, and operators see it all."""

from __future__ import annotations

import json
import time

import pytest
from sqlalchemy import select

from studio.media import engines, nodes
from studio.models import Broadcast, MediaNode, Stream
from studio.streams import service
from tests.conftest import PASSWORD, load_fixture
from tests.dbstate import snapshot
from tests.metrics_helpers import value
from tests.srs_api_double import SrsApiTestDouble
from workers import reconcile as reconciler

TOKEN = "test-hook-token"
GRACE = 30.0
OPERATOR = "ops@example.com"


@pytest.fixture()
def pool(app, redis, use_engine, monkeypatch):
    """Nodes `a` and `b`: two SRS API doubles, each with its own service id."""
    doubles = {"a": SrsApiTestDouble(), "b": SrsApiTestDouble()}
    doubles["a"].service = "svc-a"
    doubles["b"].service = "svc-b"
    use_engine(
        "srs",
        MEDIA_NODES=[
            {"id": name, "api_url": double.url, "ingest_host": f"{name}.ingest.test", "capacity": 5}
            for name, double in doubles.items()
        ],
        RECONCILE_GRACE_SECONDS=GRACE,
        MAX_BROADCAST_SECONDS=3600,
    )
    monkeypatch.setitem(app.config, "OPERATORS", [OPERATOR])
    yield doubles
    for double in doubles.values():
        double.stop()


def hook(client, body: dict, node: str | None):
    query = f"?token={TOKEN}" + (f"&node={node}" if node is not None else "")
    return client.post("/hooks/srs" + query, data=json.dumps(body), content_type="application/json")


def publish(client, stream, node: str | None, client_id: str, doubles=None):
    """An on_publish callback of `node`'s engine (the double then lists the publisher)."""
    body = {
        **load_fixture("on_publish.json"),
        "stream": stream.public_id,
        "client_id": client_id,
        "param": f"?secret={stream.stream_key}",
    }
    if doubles is not None:
        body["service_id"] = doubles[node].service
    reply = hook(client, body, node)
    if reply.get_json() == {"code": 0} and doubles is not None:
        doubles[node].publish(stream.public_id, client_id)
    return reply


def row(db, stream) -> Stream:
    db.session.expire_all()
    return db.session.get(Stream, stream.id)


def test_publishes_land_on_the_node_their_callback_names(client, db, make_stream, pool):
    """A publish through node a and one through node b: each stream records
    its node, the API says so, each node's health counts its own."""
    first, second = make_stream(), make_stream()
    assert publish(client, first, "a", "cid-a1", pool).get_json() == {"code": 0}
    assert publish(client, second, "b", "cid-b1", pool).get_json() == {"code": 0}
    assert row(db, first).node_id == "a"
    assert row(db, second).node_id == "b"
    health = client.get("/hooks/nodes/b/health")
    assert health.status_code == 200
    assert health.get_json() == {"node": "b", "draining": False, "live": 1, "capacity": 5}
    assert {n.id for n in db.session.scalars(select(MediaNode))} == {"a", "b"}


def test_a_broadcast_that_ends_leaves_its_node(client, db, make_stream, pool):
    """The unpublish of node b's publisher ends the broadcast and clears the
    node; an unpublish naming the other node (same client id) changes nothing."""
    stream = make_stream()
    publish(client, stream, "b", "cid-1", pool)
    body = {**load_fixture("on_unpublish.json"), "stream": stream.public_id, "client_id": "cid-1"}
    assert hook(client, body, "a").get_json() == {"code": 0}
    assert row(db, stream).status == "live" and row(db, stream).node_id == "b"
    assert hook(client, body, "b").get_json() == {"code": 0}
    assert row(db, stream).status == "ended" and row(db, stream).node_id is None
    assert client.get("/hooks/nodes/b/health").get_json()["live"] == 0


def test_a_drop_reaches_the_node_holding_the_stream(client, db, make_stream, pool):
    """Rotating the key of a stream live on node b drops its publisher at b's
    engine; node a hears nothing."""
    stream = make_stream()
    publish(client, stream, "b", "cid-drop", pool)
    service.rotate_key(db.session, row(db, stream))
    db.session.commit()
    assert pool["b"].kicked == ["cid-drop"]
    assert pool["a"].kicked == []


def test_each_node_answers_for_its_own_publishers(client, db, make_stream, pool):
    """engines.for_node reads each node's own engine; the reconciler drops a
    publisher unknown to the database at the node that has it, after the grace."""
    stream = make_stream()
    publish(client, stream, "a", "cid-known", pool)
    pool["b"].publish("intruder", "cid-bad")
    assert [p.stream_name for p in engines.for_node("a").stats().publishers] == [stream.public_id]
    assert [p.stream_name for p in engines.for_node("b").stats().publishers] == ["intruder"]
    now = time.time()
    assert reconciler.reconcile(now=now).dropped == []
    assert reconciler.reconcile(now=now + GRACE).dropped == ["intruder"]
    assert pool["b"].kicked == ["cid-bad"] and pool["a"].kicked == []
    assert row(db, stream).status == "live"


def test_a_dead_node_ends_only_its_own_streams(client, db, make_stream, pool):
    """Node a stops answering: nothing changes within the grace period; after
    it, a's live streams end (reason node_down; one with a reconnect window
    waits for its publisher) while b's stream stays live."""
    on_a = make_stream()
    waits = make_stream(reconnect_window=60)
    on_b = make_stream()
    publish(client, on_a, "a", "cid-a", pool)
    publish(client, waits, "a", "cid-w", pool)
    publish(client, on_b, "b", "cid-b", pool)
    pool["a"].down = True
    now = time.time()
    report = reconciler.reconcile(now=now)
    assert report.unreachable == ["a"] and report.nodes_down == []
    assert reconciler.reconcile(now=now + GRACE / 2).ended == []
    report = reconciler.reconcile(now=now + GRACE)
    assert report.nodes_down == ["a"]
    assert sorted(report.ended) == sorted([on_a.public_id, waits.public_id])
    assert row(db, on_a).status == "ended"
    ended = db.session.scalar(select(Broadcast).where(Broadcast.stream_id == on_a.id))
    assert ended.end_reason == "node_down"
    assert row(db, waits).status == "reconnecting"
    assert row(db, on_b).status == "live" and row(db, on_b).node_id == "b"
    # The reconnecting stream's encoder comes back through node b.
    assert publish(client, row(db, waits), "b", "cid-w2", pool).get_json() == {"code": 0}
    assert row(db, waits).status == "live" and row(db, waits).node_id == "b"


def test_when_no_node_answers_nothing_ends(client, db, make_stream, pool):
    """Every node unreachable (more likely the studio's own network): no stream ends."""
    stream = make_stream()
    publish(client, stream, "a", "cid-1", pool)
    pool["a"].down = pool["b"].down = True
    now = time.time()
    for offset in (0, GRACE, 10 * GRACE):
        report = reconciler.reconcile(now=now + offset)
        assert report.engine_error and report.nodes_down == [] and report.ended == []
    assert row(db, stream).status == "live"


def test_a_draining_node_refuses_publishers_and_fails_its_health(client, db, make_stream, pool):
    """Drained, node a refuses a new publisher with a clear reason and its
    health answers 503, while its live stream carries on and node b takes
    publishers; undrained, it answers 200 again."""
    live, late = make_stream(), make_stream()
    publish(client, live, "a", "cid-live", pool)
    nodes.set_draining(db.session, "a", True)
    db.session.commit()
    refused = publish(client, late, "a", "cid-late", pool)
    assert refused.status_code == 200  # SRS reads the code in the body
    assert refused.get_json()["code"] == 403
    assert "draining" in refused.get_json()["error"]
    assert row(db, late).status == "created"
    health = client.get("/hooks/nodes/a/health")
    assert health.status_code == 503
    assert health.get_json() == {"node": "a", "draining": True, "live": 1, "capacity": 5}
    now = time.time()
    reconciler.reconcile(now=now)
    reconciler.reconcile(now=now + GRACE)
    assert row(db, live).status == "live"
    assert publish(client, late, "b", "cid-late", pool).get_json() == {"code": 0}
    nodes.set_draining(db.session, "a", False)
    db.session.commit()
    assert client.get("/hooks/nodes/a/health").status_code == 200


def test_health_of_an_unknown_or_malformed_node(client, db, pool):
    """Unknown: 503 (the balancer sends nothing there); malformed: 400."""
    assert client.get("/hooks/nodes/zz/health").status_code == 503
    assert client.get("/hooks/nodes/" + "x" * 200 + "/health").status_code == 400
    assert client.get("/hooks/nodes/A_B/health").status_code == 400


@pytest.mark.parametrize(
    ("node", "status"),
    [("nope", 403), ("x" * 5000, 400), ("a%00", 400), ("", 400), ("A", 400)],
)
def test_a_callback_naming_a_bad_node_changes_nothing(client, db, make_stream, pool, node, status):
    """An unknown node is refused like a bad token; a malformed one (huge,
    NUL, empty, upper case) is invalid; nothing is written."""
    stream = make_stream()
    before = snapshot(db)
    reply = publish(client, stream, node, "cid-x")
    assert reply.status_code == status
    assert reply.get_json()["code"] != 0
    assert snapshot(db) == before


def test_the_implicit_single_node(client, db, make_stream):
    """Without STUDIO_MEDIA_NODES a callback naming no node is node `default`,
    added on the way; the stream records it."""
    stream = make_stream()
    assert publish(client, stream, None, "cid-1").get_json() == {"code": 0}
    assert row(db, stream).node_id == "default"
    assert db.session.get(MediaNode, "default") is not None
    assert client.get("/hooks/nodes/default/health").get_json()["live"] == 1


def test_the_api_and_whep_name_the_node(client, db, make_stream, make_token, pool, use_engine):
    """The API's stream says which node holds it while live, and its WHEP URL
    names that node; null once it ended."""
    stream = make_stream()
    token = make_token(stream.owner)
    headers = {"Authorization": f"Bearer {token}"}
    publish(client, stream, "b", "cid-1", pool)
    body = client.get(f"/api/v1/streams/{stream.public_id}", headers=headers).get_json()
    assert body["node"] == "b"
    assert body["playback"]["whep_url"].endswith("&node=b")
    service.end_current_broadcast(db.session, row(db, stream), "stopped")
    db.session.commit()
    body = client.get(f"/api/v1/streams/{stream.public_id}", headers=headers).get_json()
    assert body["node"] is None
    assert "node=" not in body["playback"]["whep_url"]


def test_metrics_per_node(client, db, make_stream, pool):
    """/metrics: live streams, capacity, draining and up, by node."""
    stream = make_stream()
    publish(client, stream, "a", "cid-1", pool)
    reconciler.reconcile(now=time.time())
    nodes.set_draining(db.session, "b", True)
    db.session.commit()
    text = client.get("/metrics").get_data(as_text=True)
    assert value(text, "studio_media_node_live_streams", node="a") == 1
    assert value(text, "studio_media_node_live_streams", node="b") == 0
    assert value(text, "studio_media_node_capacity", node="a") == 5
    assert value(text, "studio_media_node_draining", node="b") == 1
    assert value(text, "studio_media_node_draining", node="a") == 0
    assert value(text, "studio_media_node_up", node="a") == 1
    pool["b"].down = True
    db.session.execute(MediaNode.__table__.update().values(last_seen_at=None))
    db.session.commit()
    reconciler.reconcile(now=time.time())
    text = client.get("/metrics").get_data(as_text=True)
    assert value(text, "studio_media_node_up", node="b") == 0
    assert value(text, "studio_media_node_up", node="a") == 1


def test_the_nodes_page_is_for_operators_only(client, db, auth, make_user, make_stream, pool):
    """/ops/nodes lists the nodes to an operator, who may drain one there;
    to anyone else, signed in or not, it does not exist."""
    stream = make_stream()
    publish(client, stream, "a", "cid-1", pool)
    reconciler.reconcile(now=time.time())  # its pass adds the configured nodes
    assert client.get("/ops/nodes").status_code == 404
    make_user("someone@example.com")
    auth.login("someone@example.com", PASSWORD)
    assert client.get("/ops/nodes").status_code == 404
    form = {"csrf_token": auth.form_token("/")}
    assert client.post("/ops/nodes/a/drain", data=form).status_code == 404
    assert db.session.get(MediaNode, "a").draining is False
    auth.logout()
    make_user(OPERATOR)
    auth.login(OPERATOR, PASSWORD)
    page = client.get("/ops/nodes")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert 'data-node="a"' in html and 'data-node="b"' in html
    token = auth.form_token("/ops/nodes")
    assert client.post("/ops/nodes/a/drain", data={"csrf_token": token}).status_code == 302
    assert db.session.get(MediaNode, "a").draining is True
    assert client.post("/ops/nodes/a/undrain", data={}).status_code == 400  # no CSRF token
    db.session.expire_all()
    assert db.session.get(MediaNode, "a").draining is True
    assert client.post("/ops/nodes/zz/drain", data={"csrf_token": token}).status_code == 404


def test_a_draining_node_is_the_reason_before_the_key(app, client, db, make_stream, pool):
    """On a draining node the refusal names the node, even for a wrong key:
    the creator's page records no refused publish (the key is not the
    problem there), and nothing else is written."""
    stream = make_stream()
    nodes.sync(db.session, app.config["MEDIA_NODES"])
    nodes.set_draining(db.session, "a", True)
    db.session.commit()
    before = snapshot(db)
    body = {
        **load_fixture("on_publish.json"),
        "stream": stream.public_id,
        "client_id": "cid-wrong",
        "param": "?secret=not-the-key",
    }
    refused = hook(client, body, "a")
    assert refused.get_json() == {
        "code": 403,
        "error": "Publish refused: media node 'a' is draining.",
    }
    assert snapshot(db) == before


def test_the_publish_control_adds_a_configured_node_and_refuses_unknown_ones(db, make_stream):
    """`start_broadcast` with a node of the settings that has no row yet adds
    its row (committed with the broadcast); a node neither in the table nor
    configured raises UnknownNode and writes nothing."""
    configured = [{"id": "fresh", "api_url": "http://10.0.0.7:1985", "capacity": 3}]
    stream = make_stream()
    attempt = service.PublishAttempt(
        stream.public_id, stream.stream_key, "c1", "rtmp", node_id="fresh"
    )
    service.start_broadcast(db.session, attempt, configured_nodes=configured)
    db.session.commit()
    assert db.session.get(MediaNode, "fresh").capacity == 3
    other = make_stream()
    before = snapshot(db)
    stranger = service.PublishAttempt(
        other.public_id, other.stream_key, "c2", "rtmp", node_id="stranger"
    )
    with pytest.raises(nodes.UnknownNode):
        service.start_broadcast(db.session, stranger, configured_nodes=configured)
    db.session.rollback()
    assert snapshot(db) == before
