"""`flask nodes ...` and the node settings: what operators type, and the
clear refusal of bad input, which changes nothing."""

from __future__ import annotations

import pytest

from studio import config
from studio.media import nodes
from studio.models import MediaNode
from studio.streams import service
from tests.dbstate import snapshot


def flask_nodes(app, *args: str):
    return app.test_cli_runner().invoke(args=["nodes", *args])


def test_add_drain_undrain_list_remove(app, db):
    """An operator adds a node, drains it, takes it back, lists and removes it."""
    result = flask_nodes(
        app, "add", "edge-1", "--api-url", "http://10.0.0.7:1985/", "--capacity", "40"
    )
    assert result.exit_code == 0, result.output
    node = db.session.get(MediaNode, "edge-1")
    assert (node.api_url, node.capacity, node.draining) == ("http://10.0.0.7:1985", 40, False)
    assert flask_nodes(app, "drain", "edge-1").exit_code == 0
    db.session.expire_all()
    assert db.session.get(MediaNode, "edge-1").draining is True
    listed = flask_nodes(app, "list")
    assert "edge-1\tdraining\tlive 0/40\thttp://10.0.0.7:1985" in listed.output
    assert flask_nodes(app, "undrain", "edge-1").exit_code == 0
    db.session.expire_all()
    assert db.session.get(MediaNode, "edge-1").draining is False
    assert flask_nodes(app, "remove", "edge-1").exit_code == 0
    db.session.expire_all()
    assert db.session.get(MediaNode, "edge-1") is None


def test_sync_adds_the_configured_nodes_and_keeps_draining(app, db, monkeypatch):
    """`nodes sync` upserts STUDIO_MEDIA_NODES; a drained node stays drained."""
    configured = [
        {"id": "a", "api_url": "http://10.0.0.5:1985", "ingest_host": "a.example", "capacity": 9},
        {"id": "b", "api_url": "http://10.0.0.6:1985", "ingest_host": "", "capacity": 0},
    ]
    monkeypatch.setitem(app.config, "MEDIA_NODES", configured)
    assert flask_nodes(app, "sync").exit_code == 0
    nodes.set_draining(db.session, "a", True)
    db.session.commit()
    configured[0] = {**configured[0], "capacity": 12}
    assert flask_nodes(app, "sync").exit_code == 0
    db.session.expire_all()
    a = db.session.get(MediaNode, "a")
    assert (a.capacity, a.draining, a.ingest_host) == (12, True, "a.example")
    assert db.session.get(MediaNode, "b") is not None


def test_a_node_with_live_streams_is_not_removed(app, db, make_stream):
    """Remove refuses a node still holding a live stream, naming the count."""
    nodes.add(db.session, "busy", "http://10.0.0.9:1985")
    stream = make_stream()
    attempt = service.PublishAttempt(
        stream.public_id, stream.stream_key, "c1", "rtmp", node_id="busy"
    )
    service.start_broadcast(db.session, attempt)
    db.session.commit()
    before = snapshot(db)
    result = flask_nodes(app, "remove", "busy")
    assert result.exit_code != 0
    assert "still holds 1 live stream" in result.output
    assert snapshot(db) == before


@pytest.mark.parametrize(
    "args",
    [
        ["add", "bad\x00id", "--api-url", "http://x:1"],
        ["add", "x" * 5000, "--api-url", "http://x:1"],
        ["add", "Upper", "--api-url", "http://x:1"],
        ["add", "ok", "--api-url", "ftp://x"],
        ["add", "ok", "--api-url", "http://x:1/\x00"],
        ["add", "ok", "--api-url", "http://" + "x" * 5000],
        ["add", "ok", "--api-url", "http://x:1", "--capacity", "-1"],
        ["add", "ok", "--api-url", "http://x:1", "--ingest-host", "a b"],
        ["add", "taken", "--api-url", "http://x:1"],
        ["drain", "unknown"],
        ["drain", "bad\x00"],
        ["undrain", "y" * 5000],
        ["remove", "unknown"],
    ],
)
def test_bad_input_is_refused_and_changes_nothing(app, db, args):
    """Malformed ids, URLs, hosts and capacities, a taken id, an unknown
    node: a non-zero exit with a clear message, and no row changed."""
    nodes.add(db.session, "taken", "http://10.0.0.1:1985")
    db.session.commit()
    before = snapshot(db)
    result = flask_nodes(app, *args)
    assert result.exit_code != 0
    assert "Error:" in result.output
    assert ("Invalid node" in result.output) or ("Unknown media node" in result.output)
    assert len(result.output) < 400  # a huge value is not echoed back
    assert snapshot(db) == before


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("STUDIO_MEDIA_NODES", "not json", "not JSON"),
        ("STUDIO_MEDIA_NODES", '{"id": "a"}', "valid list"),
        ("STUDIO_MEDIA_NODES", '[{"id": "a"}]', "api_url"),
        ("STUDIO_MEDIA_NODES", '[{"id": "a\\u0000", "api_url": "http://x"}]', "[0].id"),
        ("STUDIO_MEDIA_NODES", '[{"id": "' + "a" * 5000 + '", "api_url": "http://x"}]', "[0].id"),
        ("STUDIO_MEDIA_NODES", '[{"id": "a", "api_url": "http://x", "capacity": -1}]', "capacity"),
        ("STUDIO_MEDIA_NODES", '[{"id": "a", "api_url": "http://x", "extra": 1}]', "extra"),
        (
            "STUDIO_MEDIA_NODES",
            '[{"id": "a", "api_url": "http://x"}, {"id": "a", "api_url": "http://y"}]',
            "distinct",
        ),
        ("STUDIO_NODE_ID", "node\x00", "STUDIO_NODE_ID"),
        ("STUDIO_NODE_ID", "n" * 5000, "STUDIO_NODE_ID"),
        ("STUDIO_OPERATORS", "not-an-address", "e-mail"),
    ],
)
def test_bad_node_settings_stop_start_up_naming_the_variable(name, value, says):
    """A malformed node setting is refused at start-up with the variable's
    name and what is wrong, and a huge value is not echoed in full."""
    with pytest.raises(config.SettingsError) as raised:
        config.load({name: value})
    message = str(raised.value)
    assert name in message and says in message
    assert len(message) < 1000


def test_node_settings_parse():
    """The pool, this process's node and the operators, as the app reads them."""
    flask = config.from_environ(
        {
            "STUDIO_MEDIA_NODES": '[{"id": "a", "api_url": "http://10.0.0.5:1985/"}]',
            "STUDIO_NODE_ID": "a",
            "STUDIO_OPERATORS": "Ops@Example.com, b@example.com",
        }
    )
    assert flask["MEDIA_NODES"] == [
        {"id": "a", "api_url": "http://10.0.0.5:1985", "ingest_host": "", "capacity": 0}
    ]
    assert flask["NODE_ID"] == "a"
    assert flask["OPERATORS"] == ["ops@example.com", "b@example.com"]
    assert config.from_environ({})["MEDIA_NODES"] == []
    assert nodes.configured(config.from_environ({}))[0]["id"] == "default"


def test_pick_prefers_the_least_loaded_node_that_takes_publishers(db, make_stream):
    """`pick`: never a draining or full node; the lowest live/capacity share
    (no capacity: no load); None when no node takes publishers."""
    nodes.add(db.session, "full", "http://10.0.0.1:1985", capacity=1)
    nodes.add(db.session, "half", "http://10.0.0.2:1985", capacity=4)
    nodes.add(db.session, "idle", "http://10.0.0.3:1985", capacity=10)
    for node_id, count in (("full", 1), ("half", 2), ("idle", 1)):
        for i in range(count):
            stream = make_stream()
            attempt = service.PublishAttempt(
                stream.public_id, stream.stream_key, f"c{node_id}{i}", "rtmp", node_id=node_id
            )
            service.start_broadcast(db.session, attempt)
    db.session.commit()
    assert nodes.pick(db.session).id == "idle"
    nodes.set_draining(db.session, "idle", True)
    assert nodes.pick(db.session).id == "half"
    nodes.set_draining(db.session, "half", True)
    assert nodes.pick(db.session) is None
