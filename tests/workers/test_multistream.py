"""The multistream process's wake-up rule: what on a stream's channel makes
it re-read which relays are due."""

from __future__ import annotations

import json

from workers.multistream import _wanted


def message(event: dict) -> dict:
    return {"type": "pmessage", "channel": b"studio:stream:x", "data": json.dumps(event)}


def test_status_and_target_changes_wake_it_its_own_state_reports_do_not():
    assert _wanted(message({"type": "status", "status": "live"}))
    assert _wanted(message({"type": "targets", "stream": "x"}))
    assert not _wanted(message({"type": "targets", "stream": "x", "target": {"id": 1}}))
    assert not _wanted(message({"type": "viewers", "count": 3}))
    assert not _wanted({"type": "psubscribe", "data": 1})
    assert not _wanted({"type": "pmessage", "data": "not json"})
    assert not _wanted(None)


def test_targets_inside_the_network_are_refused():
    """A target on a loopback, private or link-local address is refused with
    the reason (the relay never connects); a public address is fine."""
    from workers.relays import private_address_problem

    for url in (
        "rtmp://127.0.0.1:1935/live",
        "rtmp://localhost/live",
        "rtmps://10.1.2.3:443/app",
        "rtmp://192.168.0.10/live",
        "rtmp://169.254.169.254/live",
        "rtmp://[::1]:1935/live",
        "rtmp://0.0.0.0/live",
    ):
        problem = private_address_problem(url)
        assert problem and "private or local" in problem, url
    assert private_address_problem("rtmp://8.8.8.8/live") is None
    assert private_address_problem("rtmp://[2001:4860:4860::8888]/live") is None
    assert "Cannot resolve" in private_address_problem("rtmp://no-such-host.invalid/live")
