"""Who may watch a stream: its visibility and its share links.

`public` streams are listed and play for anyone; `unlisted` ones play for
anyone with the URL but are never listed; `private` ones play only for the
owner and for holders of one of the stream's share links. Like the stream
service, these functions take a session and plain values and never commit.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Mapping

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from studio.core import events
from studio.errors import NotFound, ValidationError
from studio.models import VISIBILITIES, ShareLink, Stream

# Enough for every person a creator shares with by hand; a bound on rows.
MAX_SHARE_LINKS = 20
SHARE_TOKEN_MAX = 64


def clean_visibility(value: object) -> str:
    """One of VISIBILITIES; raises ValidationError."""
    if not isinstance(value, str) or value not in VISIBILITIES:
        raise ValidationError(
            "Invalid stream.", {"visibility": "Choose public, unlisted or private."}
        )
    return value


def set_visibility(session: Session, stream: Stream, visibility: object) -> Stream:
    """Change who may watch. Moving into or out of `private` moves the
    stream's objects between the bucket's public and private prefixes (a job,
    once committed): the playlists keep working for whoever may watch."""
    visibility = clean_visibility(visibility)
    if stream.visibility == visibility:
        return stream
    was_private = stream.private
    stream.visibility = visibility
    if stream.private != was_private:
        events.raise_event(session, events.VisibilityChanged(stream.public_id, stream.private))
    return stream


def new_share_token() -> str:
    return secrets.token_urlsafe(24)


def create_share_link(session: Session, stream: Stream) -> ShareLink:
    """A new secret link; raises ValidationError past MAX_SHARE_LINKS."""
    count = session.scalar(select(func.count(ShareLink.id)).where(ShareLink.stream_id == stream.id))
    if (count or 0) >= MAX_SHARE_LINKS:
        raise ValidationError(
            f"A stream has at most {MAX_SHARE_LINKS} share links: revoke one first."
        )
    link = ShareLink(stream=stream, token=new_share_token())
    session.add(link)
    session.flush()
    return link


def list_share_links(session: Session, stream: Stream) -> list[ShareLink]:
    """The stream's share links, oldest first."""
    return list(
        session.scalars(
            select(ShareLink).where(ShareLink.stream_id == stream.id).order_by(ShareLink.id)
        )
    )


def get_share_link(session: Session, stream: Stream, link_id: int) -> ShareLink:
    """One of the stream's share links; raises NotFound."""
    link = session.get(ShareLink, link_id)
    if link is None or link.stream_id != stream.id:
        raise NotFound("Share link not found.")
    return link


def revoke_share_link(session: Session, link: ShareLink) -> None:
    """The link stops working at once (its holders' next page or cookie
    renewal is refused; a signed cookie already issued lasts its few minutes)."""
    session.delete(link)
    session.flush()


def share_token_valid(session: Session, stream: Stream, token: object) -> bool:
    """Whether `token` is a live share link of `stream`."""
    if not isinstance(token, str) or not token or len(token) > SHARE_TOKEN_MAX:
        return False
    found = session.scalar(
        select(ShareLink.token).where(ShareLink.stream_id == stream.id, ShareLink.token == token)
    )
    return found is not None and hmac.compare_digest(found, token)


def listed(stream: Stream) -> bool:
    """Whether the stream may appear on the home page or any listing."""
    return stream.visibility == "public"


def may_watch(
    session: Session, stream: Stream, user_id: int | None, shares: Mapping[str, str]
) -> bool:
    """Whether a viewer may watch: anyone for a public or unlisted stream;
    for a private one its owner (`user_id`) or the holder of one of its share
    links (`shares`: public id -> token, as the viewer's session keeps them)."""
    if not stream.private:
        return True
    if user_id is not None and user_id == stream.owner_id:
        return True
    return share_token_valid(session, stream, shares.get(stream.public_id))
