"""peak viewers: the most sockets that watched a broadcast at once

Zero for every existing broadcast (nobody counted them), and the default for
new ones until the socket tier records a higher count.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29 09:10:00

"""

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("broadcasts", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("peak_viewers", sa.Integer(), nullable=False, server_default="0")
        )


def downgrade():
    with op.batch_alter_table("broadcasts", schema=None) as batch_op:
        batch_op.drop_column("peak_viewers")
