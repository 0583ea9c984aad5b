"""Operator commands for the pool of media nodes: `flask --app studio nodes
sync|list|add|drain|undrain|remove|nginx-map` (studio.media.nodes holds the rules)."""

from __future__ import annotations

import logging

import click
from flask import current_app
from flask.cli import AppGroup

from studio.errors import StudioError
from studio.extensions import db
from studio.media import nodes as pool

nodes = AppGroup("nodes", help="Manage the media nodes.")
log = logging.getLogger(__name__)


def _fail(exc: StudioError) -> None:
    db.session.rollback()
    details = "; ".join(f"{k}: {v}" for k, v in exc.fields.items())
    raise click.ClickException(f"{exc.message} {details}".strip())


@nodes.command("sync")
@click.option("--quiet", is_flag=True, help="Only the process log (start-up's JSON lines).")
def sync_nodes(quiet: bool) -> None:
    """Add or update the nodes STUDIO_MEDIA_NODES names (start-up runs it)."""
    try:
        synced = pool.sync(db.session, pool.configured(current_app.config))
    except StudioError as exc:
        _fail(exc)
    db.session.commit()
    names = ", ".join(node.id for node in synced)
    log.info("media nodes synced: %s", names)
    if not quiet:
        click.echo(f"Synced {len(synced)} node(s): {names}.")


@nodes.command("list")
def list_nodes() -> None:
    """Every node: draining or not, live streams, capacity, API URL."""
    rows = pool.listing(db.session)
    db.session.rollback()
    if not rows:
        click.echo("No media nodes yet (`flask nodes sync` adds the configured ones).")
    for node in rows:
        state = "draining" if node.draining else "active"
        capacity = node.capacity or "unlimited"
        click.echo(f"{node.id}\t{state}\tlive {node.live}/{capacity}\t{node.api_url}")


@nodes.command("add")
@click.argument("node_id")
@click.option("--api-url", required=True, help="The node's media engine API origin.")
@click.option("--ingest-host", default="", help="The node's own ingest host name.")
@click.option("--capacity", default=0, type=int, help="Live streams it should hold (0: no limit).")
def add_node(node_id: str, api_url: str, ingest_host: str, capacity: int) -> None:
    """Add a node by hand (one not in STUDIO_MEDIA_NODES)."""
    try:
        node = pool.add(db.session, node_id, api_url, ingest_host, capacity)
    except StudioError as exc:
        _fail(exc)
    db.session.commit()
    click.echo(f"Added node {node.id} at {node.api_url}.")


@nodes.command("drain")
@click.argument("node_id")
def drain_node(node_id: str) -> None:
    """Take no new publisher on the node; its live streams run to their end."""
    try:
        node = pool.set_draining(db.session, node_id, True)
        live = pool.view(db.session, node.id).live
    except StudioError as exc:
        _fail(exc)
    db.session.commit()
    click.echo(f"Node {node_id} is draining; {live} live stream(s) left on it.")


@nodes.command("undrain")
@click.argument("node_id")
def undrain_node(node_id: str) -> None:
    """Take new publishers on the node again."""
    try:
        pool.set_draining(db.session, node_id, False)
    except StudioError as exc:
        _fail(exc)
    db.session.commit()
    click.echo(f"Node {node_id} takes publishers again.")


@nodes.command("remove")
@click.argument("node_id")
def remove_node(node_id: str) -> None:
    """Remove a node that holds no live stream (a configured one comes back
    at the next sync: take it out of STUDIO_MEDIA_NODES first)."""
    try:
        pool.remove(db.session, node_id)
    except StudioError as exc:
        _fail(exc)
    db.session.commit()
    click.echo(f"Removed node {node_id}.")


@nodes.command("nginx-map")
def proxy_map() -> None:
    """Print the node map nginx routes WebRTC playback by (`?node=<id>` to
    that node's engine): write it to the file deploy/nginx/studio.conf
    includes and reload nginx after every `add` or `remove` (docs/deploy.md).
    Prints nothing and fails when a node's id or API URL is unsafe in it."""
    try:
        text = pool.proxy_map(db.session, pool.configured(current_app.config))
    except StudioError as exc:
        _fail(exc)
    db.session.rollback()
    click.echo(text, nl=False)
