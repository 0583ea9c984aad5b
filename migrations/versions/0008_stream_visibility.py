"""streams.visibility (public / unlisted / private) and share links

A private stream plays only for its owner and for holders of one of its
share links (each a random token the owner can revoke by deleting it).

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-29 11:00:00

"""

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("streams", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("visibility", sa.String(16), nullable=False, server_default="public")
        )
        batch_op.create_check_constraint(
            "ck_streams_visibility", "visibility IN ('public', 'unlisted', 'private')"
        )
    op.create_table(
        "share_links",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "stream_id",
            sa.Integer(),
            sa.ForeignKey("streams.id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        ),
        sa.Column("token", sa.String(64), nullable=False, unique=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade():
    op.drop_table("share_links")
    with op.batch_alter_table("streams", schema=None) as batch_op:
        batch_op.drop_constraint("ck_streams_visibility", type_="check")
        batch_op.drop_column("visibility")
