"""Operator commands: `flask --app studio users create`, `tokens create`,
`secrets reseal`."""

from __future__ import annotations

import click
from flask import Flask, current_app
from flask.cli import AppGroup
from sqlalchemy import bindparam, select, update

from studio import secretbox
from studio.auth import service as accounts
from studio.errors import StudioError
from studio.extensions import db
from studio.models import Target, WebhookEndpoint

users = AppGroup("users", help="Manage creator accounts.")
tokens = AppGroup("tokens", help="Manage API tokens.")
secrets = AppGroup("secrets", help="The secrets stored encrypted (STUDIO_TARGET_KEYS).")
# Each stored secret: its table's id and sealed columns.
SEALED = {
    "multistream target keys": (Target.id, Target.key_encrypted),
    "webhook signing secrets": (WebhookEndpoint.id, WebhookEndpoint.secret_encrypted),
}


def _fail(exc: StudioError) -> None:
    details = "; ".join(f"{k}: {v}" for k, v in exc.fields.items())
    raise click.ClickException(f"{exc.message} {details}".strip())


@users.command("create")
@click.option("--email", required=True)
@click.option("--password", required=True, help="At least 10 characters.")
def create_user(email: str, password: str) -> None:
    """Create a creator account."""
    try:
        user = accounts.create_user(db.session, email, password)
    except StudioError as exc:
        db.session.rollback()
        _fail(exc)
    db.session.commit()
    click.echo(f"Created user {user.email} (id {user.id}).")


@tokens.command("create")
@click.option("--email", required=True)
@click.option("--name", default="CLI token")
def create_token(email: str, name: str) -> None:
    """Create an API token for a user and print it (it is shown only once)."""
    try:
        user = accounts.get_user_by_email(db.session, email)
        _, token = accounts.create_api_token(db.session, user, name)
    except StudioError as exc:
        db.session.rollback()
        _fail(exc)
    db.session.commit()
    click.echo(token)


@secrets.command("reseal")
def reseal() -> None:
    """Seal every stored secret with the first of STUDIO_TARGET_KEYS (after a
    rotation: then the old keys can be dropped). One that no configured key
    opens is left as it is and named; the exit code is then 1."""
    box = secretbox.from_config(current_app.config)
    unreadable = []
    for what, (id_column, sealed_column) in SEALED.items():
        # Locked until the commit: a secret changed meanwhile (a creator
        # entering a new key) waits, instead of being overwritten with the old.
        query = select(id_column, sealed_column).order_by(id_column).with_for_update()
        rows = db.session.execute(query).all()
        fresh = []
        for row_id, sealed in rows:
            try:
                fresh.append({"row_id": row_id, "sealed": box.reseal(sealed)})
            except secretbox.InvalidToken:
                unreadable.append(f"{what} #{row_id}")
        if fresh:
            table = id_column.class_.__table__  # Core: one executemany, no ORM
            statement = update(table).where(table.c[id_column.key] == bindparam("row_id"))
            values = {table.c[sealed_column.key]: bindparam("sealed")}
            db.session.execute(statement.values(values), fresh)
        click.echo(f"Resealed {len(fresh)} of {len(rows)} {what}.")
    db.session.commit()
    if unreadable:
        raise click.ClickException(
            "No configured key opens: " + ", ".join(unreadable) + ". Keep the key that "
            "sealed them, or have their owners enter them again."
        )


def register(app: Flask) -> None:
    from studio.media.nodes_cli import nodes
    from studio.storage.cdn_cli import cdn

    app.cli.add_command(nodes)
    app.cli.add_command(users)
    app.cli.add_command(tokens)
    app.cli.add_command(secrets)
    app.cli.add_command(cdn)
