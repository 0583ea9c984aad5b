"""Who may watch a private stream, as a request shows it, and the signed CDN
cookie that lets their player fetch its objects.

A viewer is allowed by being the signed-in owner, or by having opened one of
the stream's share links: the link's token is kept in the viewer's Flask
session (a signed cookie) and checked against the database on every request,
so revoking the link ends it. The CDN cookie (studio.storage.signing) covers
the stream's private folder only and lasts CDN_COOKIE_TTL seconds; players
renew it through `watch.access`.
"""

from __future__ import annotations

import time
from urllib.parse import urlsplit

from flask import Response, current_app, session
from flask_login import current_user

from studio.extensions import db
from studio.models import Stream
from studio.storage import layout, signing
from studio.streams import access

SESSION_KEY = "shares"
# Share grants kept per browser session (the oldest is dropped past this).
MAX_GRANTS = 20


def shares() -> dict[str, str]:
    value = session.get(SESSION_KEY)
    return dict(value) if isinstance(value, dict) else {}


def remember_share(public_id: str, token: str) -> None:
    grants = shares()
    grants.pop(public_id, None)
    grants[public_id] = token
    session[SESSION_KEY] = dict(list(grants.items())[-MAX_GRANTS:])


def is_owner(stream: Stream) -> bool:
    return bool(current_user.is_authenticated and current_user.id == stream.owner_id)


def allowed(stream: Stream) -> bool:
    """Whether this request's viewer may watch `stream`."""
    user_id = current_user.id if current_user.is_authenticated else None
    return access.may_watch(db.session, stream, user_id, shares())


def prefix_url(stream: Stream) -> str:
    """The CDN URL prefix of the stream's private folder (what the cookie grants)."""
    return layout.public_url(
        current_app.config["CDN_URL"], layout.stream_prefix(stream.public_id, private=True)
    )


def sign(response: Response, stream: Stream, now: float | None = None) -> int | None:
    """Set the signed cookie for a private stream's folder on `response`.
    Returns its expiry (unix seconds), or None for a stream that is not
    private. Raises signing.SigningNotConfigured without a key."""
    if not stream.private:
        return None
    config = current_app.config
    key = signing.SigningKey.from_config(config)
    ttl = int(config["CDN_COOKIE_TTL"])
    expires = int(now if now is not None else time.time()) + ttl
    url = prefix_url(stream)
    response.set_cookie(
        signing.COOKIE_NAME,
        signing.cookie_value(key, url, expires),
        max_age=ttl,
        path=urlsplit(url).path,
        domain=config.get("CDN_COOKIE_DOMAIN") or None,
        secure=bool(config.get("SESSION_COOKIE_SECURE")),
        httponly=True,
        samesite="Lax",
    )
    return expires


def sign_owned(response: Response, streams: list[Stream]) -> None:
    """Cookies for an owner's private streams shown on a page (thumbnails)."""
    for stream in streams:
        if stream.private:
            try:
                sign(response, stream)
            except signing.SigningNotConfigured:
                return
