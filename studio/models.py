"""Database tables. A model holds only invariants of its own row; rules that
span rows (the stream status machine, keys, broadcasts) live in services."""

from __future__ import annotations

from datetime import UTC, datetime

from flask_login import UserMixin
from sqlalchemy import (
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
from sqlalchemy.orm import Mapped, mapped_column, relationship

from studio.extensions import db

STREAM_STATUSES = ("created", "live", "reconnecting", "ended")
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
        CheckConstraint(
            "status IN ('created', 'live', 'reconnecting', 'ended')", name="ck_streams_status"
        ),
        CheckConstraint("reconnect_window BETWEEN 0 AND 1800", name="ck_streams_reconnect_window"),
        # The per-user live limit (a reconnecting stream holds its place) and
        # the live-streams gauge read these few rows only.
        Index(
            "ix_streams_live_owner",
            "owner_id",
            postgresql_where=text("status IN ('live', 'reconnecting')"),
        ),
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
    # Seconds a publisher that dropped has to come back and continue the same
    # broadcast (0: every unpublish ends the broadcast at once).
    reconnect_window: Mapped[int] = mapped_column(Integer, default=60, server_default="60")
    # While `reconnecting`: when the broadcast ends unless a publisher returns.
    reconnect_deadline: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
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
