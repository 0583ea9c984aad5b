"""`flask --app studio cdn purge STREAM`: invalidate a stream's objects on Cloud CDN.

Rarely needed: segments never change (cached for a year under names that
are never reused) and the live playlist is cached for at most a second. A
purge is for the exceptions — a replay playlist rewritten after a late
segment, or objects deleted for a takedown that must leave the edge now.

Cloud CDN invalidates by path pattern on the load balancer's URL map; this
prints the `gcloud` command for `/live/{stream id}/*` and, with `--run`,
asks the Compute API for it (`studio.storage.cdn`, as the pipeline does
with STUDIO_CDN_INVALIDATE on). Invalidation is asynchronous (usually a
minute or two) and rate limited by Google; it does not delete anything
from the bucket.
"""

from __future__ import annotations

import shlex

import click
from flask import current_app
from flask.cli import AppGroup
from sqlalchemy import select

from studio.extensions import db
from studio.models import Stream
from studio.storage import cdn as invalidation

cdn = AppGroup("cdn", help="Cloud CDN in front of the media bucket.")


def purge_command(public_id: str, url_map: str, project: str = "") -> list[str]:
    """The gcloud invocation that invalidates every cached object of a stream."""
    argv = [
        "gcloud",
        "compute",
        "url-maps",
        "invalidate-cdn-cache",
        url_map,
        "--path",
        invalidation.path_pattern(public_id),
        "--async",
    ]
    if project:
        argv += ["--project", project]
    return argv


@cdn.command("purge")
@click.argument("stream")
@click.option(
    "--url-map",
    default="",
    help="URL map of the HTTPS load balancer (default: STUDIO_CDN_URL_MAP, studio-cdn).",
)
@click.option(
    "--project",
    default="",
    help="Google Cloud project (default: STUDIO_GCP_PROJECT, else the credentials').",
)
@click.option("--run", is_flag=True, help="Invalidate now instead of printing the command.")
def purge(stream: str, url_map: str, project: str, run: bool) -> None:
    """Invalidate STREAM's objects (live playlist, segments, replays) on Cloud CDN."""
    if db.session.scalar(select(Stream.id).where(Stream.public_id == stream)) is None:
        raise click.ClickException(f"No stream with id {stream!r}.")
    config = current_app.config
    url_map, project = url_map or config["CDN_URL_MAP"], project or config["GCP_PROJECT"]
    if not run:
        click.echo(shlex.join(purge_command(stream, url_map, project)))
        click.echo("(printed only; add --run to invalidate now)", err=True)
        return
    pattern = invalidation.path_pattern(stream)
    try:
        [operation] = invalidation.invalidate(
            {**config, "CDN_URL_MAP": url_map, "GCP_PROJECT": project}, [pattern]
        )
    except invalidation.CdnError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"Invalidation of {pattern} requested (asynchronous): operation {operation}.")
