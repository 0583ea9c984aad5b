"""Creator pages: the stream list, a stream's settings and its controls."""

from __future__ import annotations

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import current_user, login_required

from studio import viewers
from studio.errors import NotFound
from studio.extensions import db
from studio.media import engines
from studio.streams import service, urls
from studio.streams.forms import ActionForm, StreamForm

bp = Blueprint("streams", __name__)


@bp.before_request
@login_required
def _require_login():
    """Every page here belongs to a logged-in creator."""


def _owned(public_id: str):
    try:
        return service.get_owned_stream(db.session, current_user, public_id)
    except NotFound:
        abort(404)


# Every POST here is CSRF-checked by CSRFProtect before the view runs.


@bp.get("/streams")
def index():
    return _index_page(StreamForm())


def _index_page(form: StreamForm, status: int = 200):
    """The creator's streams (with their thumbnails) and the create form."""
    config = current_app.config
    streams = service.list_streams(db.session, current_user)
    page = render_template(
        "streams/index.html",
        streams=streams,
        viewers=viewers.counts(current_app, [s.public_id for s in streams]),
        form=form,
        thumbnail_url=lambda stream: urls.thumbnail_url(stream, config),
    )
    return page, status


@bp.post("/streams")
def create():
    form = StreamForm()
    if not form.validate_on_submit():
        return _index_page(form, 400)
    stream = service.create_stream(db.session, current_user, form.title.data)
    db.session.commit()
    return redirect(url_for("streams.show", public_id=stream.public_id))


@bp.get("/streams/<public_id>")
def show(public_id: str):
    return _show_page(_owned(public_id))


def _show_page(stream, title_form: StreamForm | None = None, status: int = 200):
    """The stream page; a rejected rename re-renders it with its form's errors."""
    config = current_app.config
    page = render_template(
        "streams/show.html",
        stream=stream,
        engine=engines.current().name,
        ingest=urls.ingest(stream, config, engines.current().ingest_protocols),
        playback=urls.playback(stream, config, engines.current().playback_protocols),
        embed_url=urls.embed_url(stream, config),
        broadcasts=service.list_broadcasts(db.session, stream),
        replay_url=lambda broadcast: urls.replay_url(broadcast, config),
        replay_page_url=lambda broadcast: urls.replay_page_url(broadcast, config),
        form=ActionForm(),
        title_form=title_form or StreamForm(obj=stream),
        viewers=viewers.count(current_app, stream.public_id),
    )
    return page, status


@bp.get("/streams/<public_id>/broadcasts")
def broadcasts(public_id: str):
    """The broadcast rows of the stream page, re-fetched live by the page."""
    stream = _owned(public_id)
    config = current_app.config
    reply = current_app.make_response(
        render_template(
            "streams/_broadcasts.html",
            broadcasts=service.list_broadcasts(db.session, stream),
            replay_url=lambda broadcast: urls.replay_url(broadcast, config),
            replay_page_url=lambda broadcast: urls.replay_page_url(broadcast, config),
        )
    )
    reply.headers["Cache-Control"] = "no-store"
    return reply


@bp.get("/streams/<public_id>/key")
def key(public_id: str):
    """The publish settings with the secret, fetched when the creator reveals it."""
    stream = _owned(public_id)
    reply = jsonify(urls.ingest(stream, current_app.config, engines.current().ingest_protocols))
    reply.headers["Cache-Control"] = "no-store"
    return reply


@bp.post("/streams/<public_id>/title")
def rename(public_id: str):
    stream = _owned(public_id)
    form = StreamForm()
    if not form.validate_on_submit():
        return _show_page(stream, title_form=form, status=400)
    service.rename_stream(db.session, stream, form.title.data)
    db.session.commit()
    return redirect(url_for("streams.show", public_id=public_id))


@bp.post("/streams/<public_id>/rotate-key")
def rotate_key(public_id: str):
    stream = _owned(public_id)
    service.rotate_key(db.session, stream)
    db.session.commit()
    flash("New stream key issued. The old key no longer works.")
    return redirect(url_for("streams.show", public_id=public_id))


@bp.post("/streams/<public_id>/disable")
def disable(public_id: str):
    stream = _owned(public_id)
    value = request.form.get("disabled")
    if value not in {"0", "1"}:
        abort(400, "The form must send disabled=1 (disable) or disabled=0 (enable).")
    service.set_disabled(db.session, stream, value == "1")
    db.session.commit()
    return redirect(url_for("streams.show", public_id=public_id))


@bp.post("/streams/<public_id>/delete")
def delete(public_id: str):
    stream = _owned(public_id)
    service.delete_stream(db.session, stream)
    db.session.commit()
    flash("Stream deleted.")
    return redirect(url_for("streams.index"))
