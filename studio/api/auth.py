"""Bearer-token authentication for the JSON API.

Only the `Authorization` header counts: a browser's session cookie never
authenticates an API call, which is why the API needs no CSRF token.
"""

from __future__ import annotations

from sqlalchemy import Row

from studio.auth.service import stream_for_token, user_for_token
from studio.extensions import db
from studio.models import User
from studio.transactions import read_only_connection


def bearer_user(header: str) -> User | None:
    """The owner of the token in an `Authorization: Bearer ...` header, or None."""
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return user_for_token(db.session, token.strip())


def bearer_stream(header: str, public_id: str) -> Row | None:
    """The owner's stream `public_id` for the token in the header, read
    without the ORM in autocommit (`studio.auth.service.stream_for_token`);
    None without a valid token."""
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    with read_only_connection(db.engine) as connection:
        return stream_for_token(connection, token.strip(), public_id)
