"""Viewer pages: the public watch page of a stream."""

from __future__ import annotations

from flask import Blueprint, abort, current_app, render_template

from studio.errors import NotFound
from studio.extensions import db
from studio.streams import service, urls

bp = Blueprint("watch", __name__, url_prefix="/watch")


@bp.get("/<public_id>")
def watch(public_id: str):
    try:
        stream = service.get_public_stream(db.session, public_id)
    except NotFound:
        abort(404)
    config = current_app.config
    broadcasts = [b for b in service.list_broadcasts(db.session, stream) if b.ended_at]
    return render_template(
        "watch/watch.html",
        stream=stream,
        hls_url=urls.hls_url(stream, config),
        replays=[(b, urls.replay_url(b, config)) for b in broadcasts],
    )
