"""`flask --app studio cdn purge STREAM`: invalidate a stream's objects on Cloud CDN.

Rarely needed: segments never change (cached for a year under names that
are never reused) and the live playlist is cached for at most a second. A
purge is for the exceptions — a replay playlist rewritten after a late
segment, or objects deleted for a takedown that must leave the edge now.

Cloud CDN invalidates by path pattern on the load balancer's URL map; this
prints the `gcloud` command for `/live/{stream id}/*` and, with `--run`,
runs it. Invalidation is asynchronous (usually a minute or two) and rate
limited by Google; it does not delete anything from the bucket.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess

import click
from flask.cli import AppGroup
from sqlalchemy import select

from studio.extensions import db
from studio.models import Stream
from studio.storage import layout

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
        f"/{layout.stream_prefix(public_id)}*",
        "--async",
    ]
    if project:
        argv += ["--project", project]
    return argv


@cdn.command("purge")
@click.argument("stream")
@click.option(
    "--url-map",
    envvar="STUDIO_CDN_URL_MAP",
    default="studio-cdn",
    show_default=True,
    help="URL map of the HTTPS load balancer (env STUDIO_CDN_URL_MAP).",
)
@click.option(
    "--project",
    envvar="STUDIO_GCP_PROJECT",
    default="",
    help="Google Cloud project (env STUDIO_GCP_PROJECT; default: gcloud's).",
)
@click.option("--run", is_flag=True, help="Run the command instead of printing it.")
def purge(stream: str, url_map: str, project: str, run: bool) -> None:
    """Invalidate STREAM's objects (live playlist, segments, replays) on Cloud CDN."""
    if db.session.scalar(select(Stream.id).where(Stream.public_id == stream)) is None:
        raise click.ClickException(f"No stream with id {stream!r}.")
    argv = purge_command(stream, url_map, project)
    if not run:
        click.echo(shlex.join(argv))
        click.echo("(printed only; add --run to invalidate now)", err=True)
        return
    if shutil.which("gcloud") is None:
        raise click.ClickException(
            "gcloud is not installed here; run the command elsewhere:\n" + shlex.join(argv)
        )
    result = subprocess.run(argv, check=False, env=os.environ.copy())
    if result.returncode != 0:
        raise click.ClickException(f"gcloud failed with exit status {result.returncode}.")
    click.echo(f"Invalidation of /{layout.stream_prefix(stream)}* requested (asynchronous).")
