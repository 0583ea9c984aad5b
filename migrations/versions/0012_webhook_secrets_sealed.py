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
    _copy(endpoints.c.secret, endpoints.c.secret_encrypted, lambda box, value: box.seal(value))
    op.alter_column("webhook_endpoints", "secret_encrypted", nullable=False)
    op.drop_column("webhook_endpoints", "secret")


def downgrade():
    op.add_column("webhook_endpoints", sa.Column("secret", sa.String(length=64)))
    _copy(endpoints.c.secret_encrypted, endpoints.c.secret, lambda box, value: box.open(value))
    op.alter_column("webhook_endpoints", "secret", nullable=False)
    op.drop_column("webhook_endpoints", "secret_encrypted")


def _copy(source, target, convert):
    """Every row's `source`, converted with the app's box, into `target`."""
    connection = op.get_bind()
    rows = connection.execute(sa.select(endpoints.c.id, source)).all()
    if not rows:
        return
    box = secretbox.from_config(current_app.config)
    for row_id, value in rows:
        connection.execute(
            endpoints.update()
            .where(endpoints.c.id == row_id)
            .values({target.name: convert(box, value)})
        )
