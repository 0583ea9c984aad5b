"""The multistream targets' domain rules: which relays are due, the state a
relay reports, and the events that announce it."""

from __future__ import annotations

import pytest

from studio import secretbox
from studio.core import events
from studio.models import Target
from studio.streams import service, targets
from studio.streams.service import PublishAttempt


@pytest.fixture()
def box(app) -> secretbox.SecretBox:
    return secretbox.from_config(app.config)


@pytest.fixture()
def heard():
    """Events of the target types published after commits during the test."""
    seen: list = []
    kinds = (events.TargetFailed, events.TargetStateChanged, events.TargetsChanged)
    for kind in kinds:
        events.subscribe(kind, seen.append)
    yield seen
    for kind in kinds:
        events.unsubscribe(kind, seen.append)


def add(db, stream, box, name="Twitch", key="key-0000-1111", enabled=True) -> Target:
    target = targets.add_target(
        db.session,
        stream,
        box,
        name=name,
        url="rtmp://live.twitch.tv/app",
        key=key,
        enabled=enabled,
    )
    db.session.commit()
    return target


def go_live(db, stream) -> None:
    attempt = PublishAttempt(stream.public_id, stream.stream_key, "c1", "rtmp")
    service.start_broadcast(db.session, attempt)
    db.session.commit()


def test_relays_are_due_for_enabled_targets_of_live_streams_only(db, make_stream, box):
    """Not live: nothing due. Live: each enabled target, with its key decrypted."""
    stream = make_stream()
    add(db, stream, box, "On", key="on-key-123456")
    add(db, stream, box, "Off", enabled=False)
    assert targets.relays_due(db.session, box) == []
    go_live(db, stream)
    due = targets.relays_due(db.session, box)
    assert [(r.name, r.destination) for r in due] == [
        ("On", "rtmp://live.twitch.tv/app/on-key-123456")
    ]
    assert "on-key-123456" not in repr(due[0])
    assert due[0].redact("failed: rtmp://x/app/on-key-123456") == "failed: rtmp://x/app/****"


def test_a_key_no_configured_key_opens_is_reported_not_relayed(db, make_stream, box):
    """After the encryption keys changed without the old one kept, the target is
    left out and says why (the creator enters the key again)."""
    stream = make_stream()
    other = secretbox.SecretBox([secretbox.derived_key("old secret")])
    target = add(db, stream, other)
    go_live(db, stream)
    assert targets.relays_due(db.session, box) == []
    db.session.commit()
    db.session.refresh(target)
    assert target.state == "retrying"
    assert "enter it again" in target.last_error


def test_a_failing_target_raises_target_failed_once_per_run(db, make_stream, box, heard):
    """connecting -> retrying raises TargetFailed; further retries do not; going
    live and failing again does (and is counted). Every change is a TargetStateChanged."""
    from studio import metrics

    target = add(db, make_stream(), box)
    heard.clear()
    counted = metrics.TARGET_FAILURES._value.get()
    for state, error in (
        ("connecting", None),
        ("retrying", "Connection refused"),
        ("retrying", "Connection refused again"),
        ("live", None),
        ("retrying", "Broken pipe"),
    ):
        targets.record_state(db.session, target.id, state, error)
        db.session.commit()
    failed = [e for e in heard if isinstance(e, events.TargetFailed)]
    assert [(e.name, e.error) for e in failed] == [
        ("Twitch", "Connection refused"),
        ("Twitch", "Broken pipe"),
    ]
    assert metrics.TARGET_FAILURES._value.get() == counted + 2
    states = [e.state for e in heard if isinstance(e, events.TargetStateChanged)]
    assert states == ["connecting", "retrying", "retrying", "live", "retrying"]
    db.session.refresh(target)
    assert (target.state, target.last_error) == ("retrying", "Broken pipe")


def test_record_state_refuses_unknown_states_and_ignores_gone_targets(db, make_stream, box):
    target = add(db, make_stream(), box)
    with pytest.raises(ValueError):
        targets.record_state(db.session, target.id, "exploded")
    assert targets.record_state(db.session, 999999, "live") is None


def test_stop_others_marks_every_target_not_running_stopped(db, make_stream, box):
    """After a restart of the relay process, targets it does not run are stopped."""
    stream = make_stream()
    running, left = add(db, stream, box, "A"), add(db, stream, box, "B")
    for target in (running, left):
        targets.record_state(db.session, target.id, "live")
    db.session.commit()
    assert targets.stop_others(db.session, {running.id}) == [left.id]
    db.session.commit()
    db.session.refresh(running)
    db.session.refresh(left)
    assert (running.state, left.state) == ("live", "stopped")


def test_deleting_a_stream_deletes_its_targets(db, make_stream, box):
    stream = make_stream()
    add(db, stream, box)
    service.delete_stream(db.session, stream)
    db.session.commit()
    assert db.session.query(Target).count() == 0


def test_the_same_state_and_error_again_announce_nothing(db, make_stream, box, heard):
    """A relay repeating what is already recorded (a key that still cannot be
    decrypted, say) raises no event: nothing wakes the relay process for it."""
    target = add(db, make_stream(), box)
    targets.record_state(db.session, target.id, "retrying", "Connection refused")
    db.session.commit()
    heard.clear()
    targets.record_state(db.session, target.id, "retrying", "Connection refused")
    targets.record_state(db.session, target.id, "retrying")
    db.session.commit()
    assert heard == []
