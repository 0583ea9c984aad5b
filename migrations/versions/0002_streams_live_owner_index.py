"""partial index of live streams by owner

Serves the per-user live limit (count of an owner's live streams, checked on
every publish) and the live-streams gauge (count of live streams): both read
only the few rows with status 'live', which this index holds.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24 12:36:00

"""

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("streams", schema=None) as batch_op:
        batch_op.create_index(
            "ix_streams_live_owner",
            ["owner_id"],
            unique=False,
            postgresql_where=sa.text("status = 'live'"),
        )


def downgrade():
    with op.batch_alter_table("streams", schema=None) as batch_op:
        batch_op.drop_index("ix_streams_live_owner", postgresql_where=sa.text("status = 'live'"))
