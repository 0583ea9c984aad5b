"""media nodes; the node holding each live stream

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-29 13:50:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "media_nodes",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("api_url", sa.String(length=500), nullable=False),
        sa.Column("ingest_host", sa.String(length=255), server_default="", nullable=False),
        sa.Column("capacity", sa.Integer(), server_default="0", nullable=False),
        sa.Column("draining", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("id ~ '^[a-z0-9-]{1,32}$'", name="ck_media_nodes_id"),
        sa.CheckConstraint("capacity >= 0", name="ck_media_nodes_capacity"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.add_column("streams", sa.Column("node_id", sa.String(length=32), nullable=True))
    op.create_index("ix_streams_node_id", "streams", ["node_id"])
    op.create_foreign_key(
        "streams_node_id_fkey", "streams", "media_nodes", ["node_id"], ["id"], ondelete="SET NULL"
    )


def downgrade():
    op.drop_constraint("streams_node_id_fkey", "streams", type_="foreignkey")
    op.drop_index("ix_streams_node_id", table_name="streams")
    op.drop_column("streams", "node_id")
    op.drop_table("media_nodes")
