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
