"""chat: messages, moderators, bans and timeouts, the moderation log, each
stream's chat settings and users' display names

Messages belong to their stream and to the broadcast they were sent during
(replays show them in step); everything goes with the stream.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29 10:50:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("users", sa.Column("display_name", sa.String(length=40), nullable=True))
    op.add_column(
        "streams",
        sa.Column("chat_mode", sa.String(length=16), server_default="everyone", nullable=False),
    )
    op.add_column(
        "streams", sa.Column("chat_slow_mode", sa.Integer(), server_default="0", nullable=False)
    )
    op.add_column(
        "streams", sa.Column("chat_blocklist", sa.JSON(), server_default="[]", nullable=False)
    )
    op.create_check_constraint(
        "ck_streams_chat_mode", "streams", "chat_mode IN ('everyone', 'signed_in', 'off')"
    )
    op.create_check_constraint("ck_streams_chat_slow_mode", "streams", "chat_slow_mode >= 0")

    op.create_table(
        "chat_messages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("stream_id", sa.Integer(), nullable=False),
        sa.Column("broadcast_id", sa.Integer(), nullable=True),
        sa.Column("participant", sa.String(length=32), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("address_hash", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=40), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("offset", sa.Float(), nullable=True),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("char_length(text) BETWEEN 1 AND 500", name="ck_chat_messages_text"),
        sa.ForeignKeyConstraint(["stream_id"], ["streams.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["broadcast_id"], ["broadcasts.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_chat_messages_stream", "chat_messages", ["stream_id", "id"])
    op.create_index("ix_chat_messages_broadcast", "chat_messages", ["broadcast_id", "id"])
    op.create_index(
        "ix_chat_messages_participant", "chat_messages", ["stream_id", "participant"]
    )
    op.create_index("ix_chat_messages_user_id", "chat_messages", ["user_id"])

    op.create_table(
        "chat_moderators",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("stream_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("appointed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["stream_id"], ["streams.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("stream_id", "user_id", name="uq_chat_moderators"),
    )
    op.create_index("ix_chat_moderators_user_id", "chat_moderators", ["user_id"])

    op.create_table(
        "chat_bans",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("stream_id", sa.Integer(), nullable=False),
        sa.Column("participant", sa.String(length=32), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("address_hash", sa.String(length=32), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["stream_id"], ["streams.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["created_by_id"], ["users.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_chat_bans_stream", "chat_bans", ["stream_id", "participant"])

    op.create_table(
        "chat_moderation_actions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("stream_id", sa.Integer(), nullable=False),
        sa.Column("moderator_id", sa.Integer(), nullable=True),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("participant", sa.String(length=32), nullable=True),
        sa.Column("message_id", sa.Integer(), nullable=True),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["stream_id"], ["streams.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["moderator_id"], ["users.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_chat_moderation_actions_stream", "chat_moderation_actions", ["stream_id", "id"]
    )


def downgrade():
    op.drop_table("chat_moderation_actions")
    op.drop_table("chat_bans")
    op.drop_table("chat_moderators")
    op.drop_table("chat_messages")
    op.drop_constraint("ck_streams_chat_slow_mode", "streams", type_="check")
    op.drop_constraint("ck_streams_chat_mode", "streams", type_="check")
    op.drop_column("streams", "chat_blocklist")
    op.drop_column("streams", "chat_slow_mode")
    op.drop_column("streams", "chat_mode")
    op.drop_column("users", "display_name")
