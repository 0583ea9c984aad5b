"""Server-side record of every logged-in browser session, so logging out
ends it for good.

Flask's session is a signed cookie: a copy taken before logout would stay
valid. Each login therefore gets a random session id, kept in the cookie and
recorded in Redis (`studio:session:<sha256>` → user id, expiring after
`SESSION_TTL` seconds without use). A cookie counts only while its record
exists; logout deletes the record. Only logged-in sessions cost a Redis key:
anonymous visitors (a CSRF token on the login page) keep the plain cookie.
"""

from __future__ import annotations

import hashlib
import logging
import secrets

import redis as redis_lib
from flask import current_app, session
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface

from studio.models import User
from studio.redis_client import get_redis

log = logging.getLogger(__name__)

SESSION_ID = "_studio_sid"


class SessionStoreDown(Exception):
    """The session store (Redis) is unreachable: nobody can log in right now."""


class CookieSessions(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions, opened without building the signer
    when the request brings no session cookie (API calls, engine
    callbacks, probes): there is nothing to verify, and the reply is the
    same empty session."""

    def open_session(self, app, request) -> SecureCookieSession | None:
        if app.secret_key and not request.cookies.get(self.get_cookie_name(app)):
            return self.session_class()
        return super().open_session(app, request)


def _key(session_id: str) -> str:
    # The id itself is a credential: Redis holds only its digest.
    return "studio:session:" + hashlib.sha256(session_id.encode()).hexdigest()


def _ttl() -> int:
    return int(current_app.config["SESSION_TTL"])


def start(user: User) -> None:
    """Record a new session for `user` in the cookie and in Redis; raises
    SessionStoreDown when Redis is unreachable (the login must fail then)."""
    session_id = secrets.token_urlsafe(32)
    try:
        get_redis().set(_key(session_id), str(user.id), ex=_ttl())
    except redis_lib.RedisError as exc:
        raise SessionStoreDown(str(exc)) from exc
    session[SESSION_ID] = session_id


def is_live(user_id: str) -> bool:
    """Whether the request's session is a recorded, unexpired login of
    `user_id`; each use extends it. Fails closed: no store, no login."""
    session_id = session.get(SESSION_ID)
    if not isinstance(session_id, str):
        return False
    try:
        owner = get_redis().getex(_key(session_id), ex=_ttl())
    except redis_lib.RedisError:
        log.warning("session store unreachable; treating the session as logged out")
        return False
    return owner is not None and owner.decode() == user_id


def end() -> None:
    """Forget the request's session record (logout)."""
    session_id = session.pop(SESSION_ID, None)
    if not isinstance(session_id, str):
        return
    try:
        get_redis().delete(_key(session_id))
    except redis_lib.RedisError:
        log.error("could not delete a session record on logout; it expires by itself")
