"""thumbnails and the home page: when a stream's live thumbnail and a
broadcast's own were written, and an index of recent replays

Both times are nullable: a stream or broadcast without a thumbnail shows
none. The partial index serves the home page's "recent replays" (newest
ended first, only broadcasts whose replay is written).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29 08:20:00

"""

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("streams", schema=None) as batch_op:
        batch_op.add_column(sa.Column("thumbnail_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("broadcasts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("thumbnail_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index(
            "ix_broadcasts_recent_replays",
            ["ended_at"],
            unique=False,
            postgresql_where=sa.text("replay_ready_at IS NOT NULL"),
        )


def downgrade():
    with op.batch_alter_table("broadcasts", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_broadcasts_recent_replays", postgresql_where=sa.text("replay_ready_at IS NOT NULL")
        )
        batch_op.drop_column("thumbnail_at")
    with op.batch_alter_table("streams", schema=None) as batch_op:
        batch_op.drop_column("thumbnail_at")
