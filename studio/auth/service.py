"""Accounts and API tokens."""

from __future__ import annotations

import hashlib
import secrets

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import Connection, Row, and_, bindparam, func, select, true
from sqlalchemy.orm import Session, aliased
from werkzeug.security import check_password_hash, generate_password_hash

from studio.core import refusals
from studio.errors import NotFound, ValidationError
from studio.models import ApiToken, PublishRefusal, Stream, User, utcnow

PASSWORD_MIN = 10
PASSWORD_MAX = 256
TOKEN_PREFIX = "lst_"  # noqa: S105 (a marker, not a secret)
# Compared against when the email is unknown, so a login takes as long either way.
_DUMMY_HASH = generate_password_hash("not-a-real-password", method="scrypt")


def normalize_email(email: object) -> str:
    """Lower-cased, validated email; raises ValidationError."""
    if not isinstance(email, str) or not email.strip():
        raise ValidationError("Invalid account.", {"email": "An email is required."})
    try:
        result = validate_email(email.strip(), check_deliverability=False)
    except EmailNotValidError as exc:
        raise ValidationError("Invalid account.", {"email": str(exc)}) from exc
    return result.normalized.lower()


def check_password_rules(password: object) -> str:
    """Raises ValidationError unless the password is acceptable."""
    if not isinstance(password, str) or len(password) < PASSWORD_MIN:
        raise ValidationError(
            "Invalid account.", {"password": f"At least {PASSWORD_MIN} characters."}
        )
    if len(password) > PASSWORD_MAX:
        raise ValidationError(
            "Invalid account.", {"password": f"At most {PASSWORD_MAX} characters."}
        )
    return password


def create_user(session: Session, email: object, password: object) -> User:
    """Register an account (scrypt password hash); raises ValidationError."""
    email = normalize_email(email)
    password = check_password_rules(password)
    if session.scalar(select(User.id).where(User.email == email)) is not None:
        raise ValidationError(
            "Invalid account.", {"email": "An account with this email already exists."}
        )
    user = User(email=email, password_hash=generate_password_hash(password, method="scrypt"))
    session.add(user)
    session.flush()
    return user


def authenticate(session: Session, email: str, password: str) -> User | None:
    """The user for these credentials, or None (same cost whether or not the email exists)."""
    user = session.scalar(select(User).where(func.lower(User.email) == email.strip().lower()))
    if user is None:
        check_password_hash(_DUMMY_HASH, password)
        return None
    return user if check_password_hash(user.password_hash, password) else None


def get_user_by_email(session: Session, email: str) -> User:
    user = session.scalar(select(User).where(User.email == email.strip().lower()))
    if user is None:
        raise NotFound(f"No user with email {email}.")
    return user


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_api_token(session: Session, user: User, name: object = "") -> tuple[ApiToken, str]:
    """Create an API token; returns the row and the token text (shown once only)."""
    if not isinstance(name, str) or len(name.strip()) > 80:
        raise ValidationError("Invalid token.", {"name": "At most 80 characters."})
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(
        user=user,
        name=name.strip() or "API token",
        token_hash=hash_token(token),
        prefix=token[: len(TOKEN_PREFIX) + 6],
    )
    session.add(row)
    session.flush()
    return row, token


def list_api_tokens(session: Session, user: User) -> list[ApiToken]:
    query = select(ApiToken).where(ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None))
    return list(session.scalars(query.order_by(ApiToken.id.desc())))


def revoke_api_token(session: Session, user: User, token_id: int) -> ApiToken:
    """Revoke one of the user's tokens; raises NotFound for anyone else's."""
    row = session.scalar(
        select(ApiToken).where(
            ApiToken.id == token_id, ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None)
        )
    )
    if row is None:
        raise NotFound("Token not found.")
    row.revoked_at = utcnow()
    return row


def user_for_token(session: Session, token: str) -> User | None:
    """The owner of a valid, unrevoked token, or None."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        return None
    return session.scalar(_TOKEN_OWNER, {"token_hash": hash_token(token)})


def stream_for_token(connection: Connection, token: str, public_id: str) -> Row | None:
    """The API's read of one stream: for a valid, unrevoked token, its owner's
    stream `public_id` with its newest refused publish, in one query and as
    one plain row (no ORM entities: this runs on every `GET
    /api/v1/streams/{id}`). None for a token that is not valid (unknown,
    revoked). The row's `owner_id` is the token's owner; its other columns
    are the stream's, named as `Stream`'s attributes (`id` None: the owner
    has no such stream), and the refusal's, `refused_at` (None: no refusal),
    `refused_ip`, `refused_reason`."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        return None
    return connection.execute(
        _STREAM_FOR_TOKEN, {"token_hash": hash_token(token), "public_id": public_id}
    ).first()


# One query (not token, then user), built once: this runs on every API request.
_TOKEN_OWNER = (
    select(User)
    .join(ApiToken, ApiToken.user_id == User.id)
    .where(ApiToken.token_hash == bindparam("token_hash"), ApiToken.revoked_at.is_(None))
)


def _stream_for_token():
    newest = aliased(PublishRefusal, refusals.newest_refusal_of_stream())
    return (
        select(
            User.id.label("owner_id"),
            # What the API shows of a stream (`studio.api.views.stream_out`).
            Stream.id,
            Stream.public_id,
            Stream.title,
            Stream.stream_key,
            Stream.status,
            Stream.disabled,
            Stream.visibility,
            Stream.private.label("private"),
            Stream.reconnect_window,
            Stream.reconnect_deadline,
            Stream.created_at,
            Stream.thumbnail_at,
            Stream.node_id,
            newest.refused_at.label("refused_at"),
            newest.ip.label("refused_ip"),
            newest.reason.label("refused_reason"),
        )
        .join(ApiToken, ApiToken.user_id == User.id)
        .outerjoin(
            Stream,
            and_(Stream.owner_id == User.id, Stream.public_id == bindparam("public_id")),
        )
        .outerjoin(newest, true())
        .where(ApiToken.token_hash == bindparam("token_hash"), ApiToken.revoked_at.is_(None))
    )


# Built once: this runs on every `GET /api/v1/streams/{id}`.
_STREAM_FOR_TOKEN = _stream_for_token()
