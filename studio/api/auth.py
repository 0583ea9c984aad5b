"""Bearer-token authentication for the JSON API.

Only the `Authorization` header counts: a browser's session cookie never
authenticates an API call, which is why the API needs no CSRF token.
"""

from __future__ import annotations

from studio.auth.service import user_and_stream_for_token, user_for_token
from studio.extensions import db
from studio.models import PublishRefusal, Stream, User


def bearer_user(header: str) -> User | None:
    """The owner of the token in an `Authorization: Bearer ...` header, or None."""
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return user_for_token(db.session, token.strip())


def bearer_user_and_stream(
    header: str, public_id: str
) -> tuple[User, Stream | None, PublishRefusal | None] | None:
    """`bearer_user`, with the owner's stream `public_id` and its newest
    refused publish read in the same query; None without a valid token."""
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return user_and_stream_for_token(db.session, token.strip(), public_id)
