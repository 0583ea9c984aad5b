"""Replays: a broadcast's VOD playlist, once every segment of it is stored."""

from __future__ import annotations

from sqlalchemy.orm import Session

from studio.core import events
from studio.models import Broadcast, utcnow


def mark_replay_ready(session: Session, broadcast: Broadcast, stream: str) -> None:
    """Record that the replay of `broadcast` (of stream `stream`) is in the
    bucket; ReplayReady is announced once the caller commits. Raises nothing."""
    broadcast.replay_ready_at = utcnow()
    events.raise_event(session, events.ReplayReady(stream, broadcast.id))
