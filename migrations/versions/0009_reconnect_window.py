"""streams: a reconnect window, and the `reconnecting` status

A publisher that drops and comes back within its stream's reconnect window
continues the same broadcast. `reconnect_window` (seconds, 0 turns it off,
at most 1800) is per stream, 60 for every existing one;
`reconnect_deadline` is set while the stream is `reconnecting`. The partial
index of live streams by owner also holds reconnecting ones: they keep their
place under the per-user live limit.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-29 11:00:00

"""

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("streams", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("reconnect_window", sa.Integer(), server_default="60", nullable=False)
        )
        batch_op.add_column(
            sa.Column("reconnect_deadline", sa.DateTime(timezone=True), nullable=True)
        )
        batch_op.create_check_constraint(
            "ck_streams_reconnect_window", "reconnect_window BETWEEN 0 AND 1800"
        )
        batch_op.drop_constraint("ck_streams_status", type_="check")
        batch_op.create_check_constraint(
            "ck_streams_status", "status IN ('created', 'live', 'reconnecting', 'ended')"
        )
        batch_op.drop_index("ix_streams_live_owner")
        batch_op.create_index(
            "ix_streams_live_owner",
            ["owner_id"],
            unique=False,
            postgresql_where=sa.text("status IN ('live', 'reconnecting')"),
        )


def downgrade():
    # A stream caught reconnecting ends: the old schema has no such status.
    op.execute(
        "UPDATE broadcasts SET ended_at = now(), end_reason = 'reconnect_timeout' "
        "WHERE ended_at IS NULL AND stream_id IN "
        "(SELECT id FROM streams WHERE status = 'reconnecting')"
    )
    op.execute("UPDATE streams SET status = 'ended' WHERE status = 'reconnecting'")
    with op.batch_alter_table("streams", schema=None) as batch_op:
        batch_op.drop_index("ix_streams_live_owner")
        batch_op.create_index(
            "ix_streams_live_owner",
            ["owner_id"],
            unique=False,
            postgresql_where=sa.text("status = 'live'"),
        )
        batch_op.drop_constraint("ck_streams_status", type_="check")
        batch_op.create_check_constraint(
            "ck_streams_status", "status IN ('created', 'live', 'ended')"
        )
        batch_op.drop_constraint("ck_streams_reconnect_window", type_="check")
        batch_op.drop_column("reconnect_deadline")
        batch_op.drop_column("reconnect_window")
