"""Viewer pages: the public watch page of a stream."""

from __future__ import annotations

from flask import Blueprint, abort, current_app, render_template

from studio.errors import NotFound
from studio.extensions import db
from studio.streams import service, urls

bp = Blueprint("watch", __name__, url_prefix="/watch")


def _stream_or_404(public_id: str):
    try:
        return service.get_public_stream(db.session, public_id)
    except NotFound:
        abort(404)


@bp.get("/<public_id>")
def watch(public_id: str):
    stream = _stream_or_404(public_id)
    live = service.open_broadcast(db.session, stream) if stream.status == "live" else None
    return render_template(
        "watch/watch.html",
        stream=stream,
        live_broadcast=live,
        hls_url=urls.hls_url(stream, current_app.config),
        replays=_replays(stream),
    )


@bp.get("/<public_id>/replays")
def replays(public_id: str):
    """The list of past broadcasts, re-fetched live by the watch page."""
    stream = _stream_or_404(public_id)
    reply = current_app.make_response(
        render_template("watch/_replays.html", replays=_replays(stream))
    )
    reply.headers["Cache-Control"] = "no-store"
    return reply


def _replays(stream) -> list[tuple]:
    """Ended broadcasts, newest first, each with its replay URL (None while
    the replay is being written)."""
    config = current_app.config
    ended = [b for b in service.list_broadcasts(db.session, stream) if b.ended_at]
    return [(broadcast, urls.replay_url(broadcast, config)) for broadcast in ended]
