"""Operator commands: `flask --app studio users create`, `tokens create`."""

from __future__ import annotations

import click
from flask import Flask
from flask.cli import AppGroup

from studio.auth import service as accounts
from studio.errors import StudioError
from studio.extensions import db

users = AppGroup("users", help="Manage creator accounts.")
tokens = AppGroup("tokens", help="Manage API tokens.")


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


def register(app: Flask) -> None:
    from studio.media.nodes_cli import nodes
    from studio.storage.cdn_cli import cdn

    app.cli.add_command(nodes)
    app.cli.add_command(users)
    app.cli.add_command(tokens)
    app.cli.add_command(cdn)
