"""stream_targets: multistream destinations; broadcasts may come in over SRT

A target is a stream's RTMP/RTMPS destination (YouTube, Twitch, Facebook or
any server): its key is stored encrypted, its relay state is written by the
multistream process. Broadcasts published over SRT (SRS 5) record `srt`.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29 10:45:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "stream_targets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("stream_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=80), nullable=False),
        sa.Column("url", sa.String(length=500), nullable=False),
        sa.Column("key_encrypted", sa.LargeBinary(), nullable=False),
        sa.Column("key_hint", sa.String(length=8), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("state", sa.String(length=16), server_default="stopped", nullable=False),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        sa.Column("state_changed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "state IN ('stopped', 'connecting', 'live', 'retrying')", name="ck_targets_state"
        ),
        sa.ForeignKeyConstraint(["stream_id"], ["streams.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_stream_targets_stream_id", "stream_targets", ["stream_id"], unique=False)
    op.drop_constraint("ck_broadcasts_protocol", "broadcasts", type_="check")
    op.create_check_constraint(
        "ck_broadcasts_protocol",
        "broadcasts",
        "protocol IN ('rtmp', 'webrtc', 'websocket', 'srt')",
    )


def downgrade():
    # SRT broadcasts were pushed by an encoder like RTMP ones: keep them as such.
    op.execute("UPDATE broadcasts SET protocol = 'rtmp' WHERE protocol = 'srt'")
    op.drop_constraint("ck_broadcasts_protocol", "broadcasts", type_="check")
    op.create_check_constraint(
        "ck_broadcasts_protocol", "broadcasts", "protocol IN ('rtmp', 'webrtc', 'websocket')"
    )
    op.drop_index("ix_stream_targets_stream_id", table_name="stream_targets")
    op.drop_table("stream_targets")
