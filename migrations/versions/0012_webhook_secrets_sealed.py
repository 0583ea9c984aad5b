"""webhook signing secrets stored encrypted (studio.secretbox), like target keys

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-29 20:10:00

"""
import sqlalchemy as sa
from alembic import op
from flask import current_app

from studio import secretbox

# revision identifiers, used by Alembic.
revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

endpoints = sa.table(
    "webhook_endpoints",
    sa.column("id", sa.Integer()),
    sa.column("secret", sa.String()),
    sa.column("secret_encrypted", sa.LargeBinary()),
)


def upgrade():
    op.add_column("webhook_endpoints", sa.Column("secret_encrypted", sa.LargeBinary()))
    connection = op.get_bind()
    rows = connection.execute(sa.select(endpoints.c.id, endpoints.c.secret)).all()
    if rows:
        box = secretbox.from_config(current_app.config)
        for row in rows:
            connection.execute(
                endpoints.update()
                .where(endpoints.c.id == row.id)
                .values(secret_encrypted=box.seal(row.secret))
            )
    op.alter_column("webhook_endpoints", "secret_encrypted", nullable=False)
    op.drop_column("webhook_endpoints", "secret")


def downgrade():
    op.add_column("webhook_endpoints", sa.Column("secret", sa.String(length=64)))
    connection = op.get_bind()
    rows = connection.execute(sa.select(endpoints.c.id, endpoints.c.secret_encrypted)).all()
    if rows:
        box = secretbox.from_config(current_app.config)
        for row in rows:
            connection.execute(
                endpoints.update()
                .where(endpoints.c.id == row.id)
                .values(secret=box.open(row.secret_encrypted))
            )
    op.alter_column("webhook_endpoints", "secret", nullable=False)
    op.drop_column("webhook_endpoints", "secret_encrypted")
