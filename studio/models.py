"""Database tables. A model holds only invariants of its own row; rules that
span rows (the stream status machine, keys, broadcasts) live in services."""

from __future__ import annotations

from datetime import UTC, datetime

from flask_login import UserMixin
from sqlalchemy import (
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column, relationship

from studio.extensions import db

STREAM_STATUSES = ("created", "live", "ended")
INGEST_PROTOCOLS = ("rtmp", "webrtc", "websocket")


def utcnow() -> datetime:
    return datetime.now(UTC)


class User(UserMixin, db.Model):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    streams: Mapped[list[Stream]] = relationship(back_populates="owner")


class ApiToken(db.Model):
    """A bearer token for the JSON API. Only its SHA-256 is stored."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(80))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # First characters of the token, shown in the UI so a creator can tell tokens apart.
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    user: Mapped[User] = relationship()


class Stream(db.Model):
    """A creator's stream. `public_id` names it everywhere public (SRS stream
    name, watch page, bucket paths); `stream_key` is the publish secret."""

    __tablename__ = "streams"
    __table_args__ = (
        CheckConstraint("status IN ('created', 'live', 'ended')", name="ck_streams_status"),
        # The per-user live limit and the live-streams gauge count live rows only.
        Index("ix_streams_live_owner", "owner_id", postgresql_where=text("status = 'live'")),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(String(32), unique=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    title: Mapped[str] = mapped_column(String(120))
    stream_key: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="created")
    disabled: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )
    # When the live thumbnail (a recent frame) was last written to the bucket.
    thumbnail_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    owner: Mapped[User] = relationship(back_populates="streams")
    broadcasts: Mapped[list[Broadcast]] = relationship(
        back_populates="stream",
        order_by="Broadcast.started_at.desc()",
        cascade="all, delete-orphan",
        passive_deletes=True,
    )


class Broadcast(db.Model):
    """One publish session of a stream, keyed by the media server's client id."""

    __tablename__ = "broadcasts"
    __table_args__ = (
        CheckConstraint(
            "protocol IN ('rtmp', 'webrtc', 'websocket')", name="ck_broadcasts_protocol"
        ),
        # At most one open (not ended) broadcast per stream.
        Index(
            "uq_broadcasts_one_open_per_stream",
            "stream_id",
            unique=True,
            postgresql_where=text("ended_at IS NULL"),
        ),
        Index("ix_broadcasts_client", "client_id", "server_id"),
        # The home page's recent replays: newest ended first, replays only.
        Index(
            "ix_broadcasts_recent_replays",
            "ended_at",
            postgresql_where=text("replay_ready_at IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    stream_id: Mapped[int] = mapped_column(ForeignKey("streams.id", ondelete="CASCADE"), index=True)
    client_id: Mapped[str] = mapped_column(String(64))
    server_id: Mapped[str] = mapped_column(String(64), default="")
    service_id: Mapped[str] = mapped_column(String(64), default="")
    protocol: Mapped[str] = mapped_column(String(16))
    ip: Mapped[str] = mapped_column(String(64), default="")
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    end_reason: Mapped[str | None] = mapped_column(String(32))
    # Set once the replay (VOD playlist) is in the bucket.
    replay_ready_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Set once the broadcast's own thumbnail (its replay's poster) is in the bucket.
    thumbnail_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The most watch-page sockets open at once during the broadcast (the
    # socket tier raises it as it counts; never lowered).
    peak_viewers: Mapped[int] = mapped_column(Integer, default=0, server_default="0")

    stream: Mapped[Stream] = relationship(back_populates="broadcasts")
    segments: Mapped[list[Segment]] = relationship(
        back_populates="broadcast",
        order_by="Segment.sequence",
        cascade="all, delete-orphan",
        passive_deletes=True,
    )


class Segment(db.Model):
    """An HLS segment of a broadcast that is in the bucket."""

    __tablename__ = "segments"
    __table_args__ = (UniqueConstraint("broadcast_id", "sequence", name="uq_segments_sequence"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    broadcast_id: Mapped[int] = mapped_column(
        ForeignKey("broadcasts.id", ondelete="CASCADE"), index=True
    )
    sequence: Mapped[int] = mapped_column(Integer)
    duration: Mapped[float] = mapped_column(Float)
    object_name: Mapped[str] = mapped_column(String(255))
    size: Mapped[int] = mapped_column(Integer, default=0)
    discontinuity: Mapped[bool] = mapped_column(default=False)
    uploaded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # When its first frame reached the engine (the file's close time minus its
    # duration): the playlists' #EXT-X-PROGRAM-DATE-TIME. None for old rows.
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)

    broadcast: Mapped[Broadcast] = relationship(back_populates="segments")


class PublishRefusal(db.Model):
    """A publish the studio refused for a stream (the last few are kept, at a
    bounded rate: see `studio.streams.service.record_refused_publish`)."""

    __tablename__ = "publish_refusals"

    id: Mapped[int] = mapped_column(primary_key=True)
    stream_id: Mapped[int] = mapped_column(ForeignKey("streams.id", ondelete="CASCADE"), index=True)
    refused_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # The publisher's address as the media server reported it (may be empty).
    ip: Mapped[str] = mapped_column(String(64), default="")
    # One of studio.streams.service.REFUSAL_REASONS ("old key", ...).
    reason: Mapped[str] = mapped_column(String(32))


class WebhookEndpoint(db.Model):
    """A creator's webhook: a URL that hears the events it chose, signed with
    its own secret. Disabled by the delivery worker after persistent failure."""

    __tablename__ = "webhook_endpoints"

    id: Mapped[int] = mapped_column(primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    url: Mapped[str] = mapped_column(String(2048))
    events: Mapped[list[str]] = mapped_column(ARRAY(String(32)))
    secret: Mapped[str] = mapped_column(String(64))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    disabled_reason: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_success_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_failure_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class WebhookDelivery(db.Model):
    """One attempt to deliver an event to an endpoint (the last few are kept)."""

    __tablename__ = "webhook_deliveries"

    id: Mapped[int] = mapped_column(primary_key=True)
    endpoint_id: Mapped[int] = mapped_column(
        ForeignKey("webhook_endpoints.id", ondelete="CASCADE"), index=True
    )
    event_id: Mapped[str] = mapped_column(String(40))
    event_type: Mapped[str] = mapped_column(String(32))
    attempt: Mapped[int] = mapped_column(Integer, default=1)
    # The receiver's HTTP status; None when no answer came (see `error`).
    status_code: Mapped[int | None] = mapped_column(Integer)
    ok: Mapped[bool] = mapped_column(Boolean, default=False)
    error: Mapped[str | None] = mapped_column(String(200))
    duration_ms: Mapped[int] = mapped_column(Integer, default=0)
    attempted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
