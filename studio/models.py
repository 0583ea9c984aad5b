"""Database tables. A model holds only invariants of its own row; rules that
span rows (the stream status machine, keys, broadcasts) live in services."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.hybrid import hybrid_property
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, query_expression, relationship

STREAM_STATUSES = ("created", "live", "reconnecting", "ended")
INGEST_PROTOCOLS = ("rtmp", "webrtc", "websocket", "srt")
CHAT_MODES = ("everyone", "signed_in", "off")
CHAT_TEXT_MAX = 500
TARGET_STATES = ("stopped", "connecting", "live", "retrying")
# public: listed and playable by anyone; unlisted: playable by anyone with the
# URL, never listed; private: the owner and share-link holders only.
VISIBILITIES = ("public", "unlisted", "private")


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    """The declarative base of every table: plain SQLAlchemy, so the domain
    core that uses the models needs no Flask. Flask-SQLAlchemy's `db` is
    built on it (`studio/extensions.py`) and shares its metadata."""


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    # Shown in chat; None: the e-mail's local part (studio.chat.rules.display_name).
    display_name: Mapped[str | None] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    streams: Mapped[list[Stream]] = relationship(back_populates="owner")

    # What Flask-Login asks of a signed-in user (its UserMixin's answers),
    # written out so the tables need no Flask.
    is_authenticated = True
    is_active = True
    is_anonymous = False

    def get_id(self) -> str:
        return str(self.id)


class ApiToken(Base):
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


class Stream(Base):
    """A creator's stream. `public_id` names it everywhere public (SRS stream
    name, watch page, bucket paths); `stream_key` is the publish secret."""

    __tablename__ = "streams"
    __table_args__ = (
        CheckConstraint(
            "status IN ('created', 'live', 'reconnecting', 'ended')", name="ck_streams_status"
        ),
        CheckConstraint("reconnect_window BETWEEN 0 AND 1800", name="ck_streams_reconnect_window"),
        CheckConstraint(
            "visibility IN ('public', 'unlisted', 'private')", name="ck_streams_visibility"
        ),
        # The per-user live limit (a reconnecting stream holds its place) and
        # the live-streams gauge read these few rows only.
        Index(
            "ix_streams_live_owner",
            "owner_id",
            postgresql_where=text("status IN ('live', 'reconnecting')"),
        ),
        CheckConstraint(
            "chat_mode IN ('everyone', 'signed_in', 'off')", name="ck_streams_chat_mode"
        ),
        CheckConstraint("chat_slow_mode >= 0", name="ck_streams_chat_slow_mode"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(String(32), unique=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    title: Mapped[str] = mapped_column(String(120))
    stream_key: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="created")
    disabled: Mapped[bool] = mapped_column(default=False)
    visibility: Mapped[str] = mapped_column(String(16), default="public", server_default="public")
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
    # Chat: who may write, seconds between two messages of one participant
    # (0: no slow mode), words and phrases refused (studio.chat).
    chat_mode: Mapped[str] = mapped_column(
        String(16), default="everyone", server_default="everyone"
    )
    chat_slow_mode: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    chat_blocklist: Mapped[list[str]] = mapped_column(JSON, default=list, server_default="[]")
    # The media node holding the live stream: set on an accepted publish,
    # cleared when the broadcast ends (studio.media.nodes).
    node_id: Mapped[str | None] = mapped_column(
        ForeignKey("media_nodes.id", ondelete="SET NULL"), index=True
    )
    # Not a column: whether the owner had an enabled webhook endpoint, read
    # only by a query that asks (`with_expression`; the publish control reads
    # it in its plain row of the stream, `service._LOCK`); None otherwise
    # (unknown: webhooks are queued as always).
    owner_webhooks: Mapped[bool | None] = query_expression()

    owner: Mapped[User] = relationship(back_populates="streams")
    broadcasts: Mapped[list[Broadcast]] = relationship(
        back_populates="stream",
        order_by="Broadcast.started_at.desc()",
        cascade="all, delete-orphan",
        passive_deletes=True,
    )
    targets: Mapped[list[Target]] = relationship(
        back_populates="stream",
        order_by="Target.id",
        cascade="all, delete-orphan",
        passive_deletes=True,
    )
    share_links: Mapped[list[ShareLink]] = relationship(
        back_populates="stream",
        order_by="ShareLink.id",
        cascade="all, delete-orphan",
        passive_deletes=True,
    )

    @hybrid_property
    def private(self) -> bool:
        # Also an SQL expression (`Stream.private`): the API's plain-row read selects it.
        return self.visibility == "private"


class MediaNode(Base):
    """A media node: one engine (SRS or nginx-rtmp) with its own HLS directory
    and upload workers. Rows come from STUDIO_MEDIA_NODES (`flask nodes sync`)
    or an operator (`flask nodes add`); a draining node takes no new publish."""

    __tablename__ = "media_nodes"
    __table_args__ = (
        CheckConstraint("id ~ '^[a-z0-9-]{1,32}$'", name="ck_media_nodes_id"),
        CheckConstraint("capacity >= 0", name="ck_media_nodes_capacity"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    # SRS's HTTP API, or nginx-rtmp's control/stat origin.
    api_url: Mapped[str] = mapped_column(String(500))
    ingest_host: Mapped[str] = mapped_column(String(255), default="", server_default="")
    # Live streams it should hold; 0: no limit.
    capacity: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    draining: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # When its engine last answered the reconciler.
    last_seen_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ShareLink(Base):
    """A secret link to a private stream's watch page; deleting it revokes it."""

    __tablename__ = "share_links"

    id: Mapped[int] = mapped_column(primary_key=True)
    stream_id: Mapped[int] = mapped_column(ForeignKey("streams.id", ondelete="CASCADE"), index=True)
    token: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    stream: Mapped[Stream] = relationship(back_populates="share_links")


class Target(Base):
    """A multistream destination: the studio relays the stream's broadcasts
    to `{url}/{key}` while it is enabled. The key is stored encrypted
    (`studio.secretbox`); only its last characters are kept in clear, to be
    shown. `state` and `last_error` are written by the relay process."""

    __tablename__ = "stream_targets"
    __table_args__ = (
        CheckConstraint(
            "state IN ('stopped', 'connecting', 'live', 'retrying')", name="ck_targets_state"
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    stream_id: Mapped[int] = mapped_column(ForeignKey("streams.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(80))
    url: Mapped[str] = mapped_column(String(500))
    key_encrypted: Mapped[bytes] = mapped_column(LargeBinary)
    key_hint: Mapped[str] = mapped_column(String(8))
    enabled: Mapped[bool] = mapped_column(default=True)
    state: Mapped[str] = mapped_column(String(16), default="stopped", server_default="stopped")
    last_error: Mapped[str | None] = mapped_column(String(500))
    state_changed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )

    stream: Mapped[Stream] = relationship(back_populates="targets")


class Broadcast(Base):
    """One publish session of a stream, keyed by the media server's client id."""

    __tablename__ = "broadcasts"
    __table_args__ = (
        CheckConstraint(
            "protocol IN ('rtmp', 'webrtc', 'websocket', 'srt')", name="ck_broadcasts_protocol"
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


class Segment(Base):
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


class ChatMessage(Base):
    """A chat message, with the broadcast it was sent during (for replays).
    `participant` is the opaque per-stream id of its author; a deleted
    message keeps its row (the moderation log names it) but is never shown."""

    __tablename__ = "chat_messages"
    __table_args__ = (
        CheckConstraint(
            f"char_length(text) BETWEEN 1 AND {CHAT_TEXT_MAX}", name="ck_chat_messages_text"
        ),
        Index("ix_chat_messages_stream", "stream_id", "id"),
        Index("ix_chat_messages_broadcast", "broadcast_id", "id"),
        Index("ix_chat_messages_participant", "stream_id", "participant"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    stream_id: Mapped[int] = mapped_column(ForeignKey("streams.id", ondelete="CASCADE"))
    broadcast_id: Mapped[int | None] = mapped_column(
        ForeignKey("broadcasts.id", ondelete="CASCADE")
    )
    participant: Mapped[str] = mapped_column(String(32))
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), index=True
    )
    # A keyed digest of the sender's address (never the address): address bans.
    address_hash: Mapped[str] = mapped_column(String(32), default="")
    name: Mapped[str] = mapped_column(String(40))
    text: Mapped[str] = mapped_column(Text)
    sent_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # Seconds from the broadcast's start to the message.
    offset: Mapped[float | None] = mapped_column(Float)
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    @property
    def signed_in(self) -> bool:
        # Participant ids of accounts start with "u", anonymous ones with "a".
        return self.participant.startswith("u")


class ChatModerator(Base):
    """A user the stream's owner appointed to moderate its chat."""

    __tablename__ = "chat_moderators"
    __table_args__ = (UniqueConstraint("stream_id", "user_id", name="uq_chat_moderators"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    stream_id: Mapped[int] = mapped_column(ForeignKey("streams.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    appointed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    user: Mapped[User] = relationship()


class ChatBan(Base):
    """A participant refused in a stream's chat: for good (`expires_at` None)
    or until `expires_at` (a timeout). An anonymous participant's ban also
    holds their address (`address_hash`), so a new anonymous id does not
    escape it; a signed-in participant's holds their account."""

    __tablename__ = "chat_bans"
    __table_args__ = (Index("ix_chat_bans_stream", "stream_id", "participant"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    stream_id: Mapped[int] = mapped_column(ForeignKey("streams.id", ondelete="CASCADE"))
    participant: Mapped[str] = mapped_column(String(32))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    address_hash: Mapped[str | None] = mapped_column(String(32))
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))


class ChatModerationAction(Base):
    """What a moderator did in a stream's chat, and when (the moderation log)."""

    __tablename__ = "chat_moderation_actions"
    __table_args__ = (Index("ix_chat_moderation_actions_stream", "stream_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    stream_id: Mapped[int] = mapped_column(ForeignKey("streams.id", ondelete="CASCADE"))
    moderator_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    action: Mapped[str] = mapped_column(String(32))
    participant: Mapped[str | None] = mapped_column(String(32))
    message_id: Mapped[int | None] = mapped_column(Integer)
    detail: Mapped[dict] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    moderator: Mapped[User | None] = relationship()


class PublishRefusal(Base):
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


class WebhookEndpoint(Base):
    """A creator's webhook: a URL that hears the events it chose, signed with
    its own secret, stored encrypted (`studio.secretbox`: the studio must
    read it back to sign). Disabled by the delivery worker after persistent
    failure."""

    __tablename__ = "webhook_endpoints"

    id: Mapped[int] = mapped_column(primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    url: Mapped[str] = mapped_column(String(2048))
    events: Mapped[list[str]] = mapped_column(ARRAY(String(32)))
    secret_encrypted: Mapped[bytes] = mapped_column(LargeBinary)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    disabled_reason: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_success_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_failure_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class WebhookDelivery(Base):
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
