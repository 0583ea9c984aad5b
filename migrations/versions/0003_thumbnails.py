"""thumbnails: when a stream's live thumbnail and a broadcast's own were written

Both are nullable: a stream or broadcast without a thumbnail shows none.

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


def downgrade():
    with op.batch_alter_table("broadcasts", schema=None) as batch_op:
        batch_op.drop_column("thumbnail_at")
    with op.batch_alter_table("streams", schema=None) as batch_op:
        batch_op.drop_column("thumbnail_at")
