"""Bearer-token authentication for the JSON API.

Only the `Authorization` header counts: a browser's session cookie never
authenticates an API call, which is why the API needs no CSRF token.
"""

from __future__ import annotations

from studio.auth.service import user_for_token
from studio.extensions import db
from studio.models import User


def bearer_user(header: str) -> User | None:
    """The owner of the token in an `Authorization: Bearer ...` header, or None."""
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return user_for_token(db.session, token.strip())
