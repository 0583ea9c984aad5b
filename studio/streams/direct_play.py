"""Who may play a stream straight from the media server (RTMP playback, or
WebRTC/WHEP), which the media server asks before it plays (a `Play` command).

Viewers watch over HLS from the bucket behind the CDN, where a private
stream needs the studio's signed cookies; the media server's own playback
carries no such credential. So a private stream is played from the media
server only by the studio's multistream relay (with a play grant); public and
unlisted streams by anyone who knows their id, as their HLS and WHEP URLs are.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from studio.core.commands import Play
from studio.models import Stream
from studio.streams.tickets import check_play_grant

APP = "live"


def play_refusal(session: Session, command: Play, secret_key: str) -> str | None:
    """Why `command` may not play its stream from the media server, or None."""
    if command.app != APP:
        return f"unknown app '{command.app}'"
    visibility = session.scalar(select(Stream.visibility).where(Stream.public_id == command.stream))
    if visibility is None:
        return "unknown stream"
    if visibility == "private" and not (
        command.grant and check_play_grant(secret_key, command.stream, command.grant)
    ):
        return "a private stream is watched through the studio"
    return None
