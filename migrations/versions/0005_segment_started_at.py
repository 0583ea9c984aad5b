"""segments: the wall-clock time a segment's first frame reached the engine

Live and replay playlists carry it as #EXT-X-PROGRAM-DATE-TIME so players
can tell how far behind live they are. Nullable: rows recorded before this
revision have none and their playlists simply omit the tag.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29 09:05:00

"""

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("segments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("started_at", sa.DateTime(timezone=True), nullable=True))


def downgrade():
    with op.batch_alter_table("segments", schema=None) as batch_op:
        batch_op.drop_column("started_at")
