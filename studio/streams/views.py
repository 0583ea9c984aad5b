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

from studio import ingest_history, viewers
from studio.chat import moderation
from studio.chat.rules import ChatRefused
from studio.core import refusals
from studio.errors import NotFound, ValidationError
from studio.extensions import db
from studio.media import engines
from studio.redis_client import get_redis
from studio.streams import access, reconnect, service, urls
from studio.streams.forms import (
    ActionForm,
    ModeratorForm,
    ReconnectForm,
    StreamForm,
    TargetForm,
    VisibilityForm,
)
from studio.streams.targets import PRESETS, list_targets
from studio.watch import grants

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
    reply = current_app.make_response((page, status))
    grants.sign_owned(reply, streams)  # thumbnails of private streams
    return reply


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


def _show_page(
    stream,
    title_form: StreamForm | None = None,
    status: int = 200,
    moderator_form: ModeratorForm | None = None,
    target_form: TargetForm | None = None,
    visibility_form: VisibilityForm | None = None,
    reconnect_form: ReconnectForm | None = None,
):
    """The stream page; a rejected change re-renders it with its form's errors."""
    config = current_app.config
    page = render_template(
        "streams/show.html",
        stream=stream,
        engine=engines.current().name,
        ingest=urls.ingest(stream, config, engines.current().ingest_protocols),
        playback=urls.playback(stream, config, engines.current().playback_protocols),
        embed_code=urls.embed_code(stream, config),
        broadcasts=service.list_broadcasts(db.session, stream),
        replay_url=lambda broadcast: urls.replay_url(broadcast, config),
        replay_page_url=lambda broadcast: urls.replay_page_url(broadcast, config),
        form=ActionForm(),
        title_form=title_form or StreamForm(obj=stream),
        visibility_form=visibility_form or VisibilityForm(visibility=stream.visibility),
        share_links=[
            (link, urls.share_url(stream, link, config))
            for link in access.list_share_links(db.session, stream)
        ],
        reconnect_form=reconnect_form or ReconnectForm(obj=stream),
        viewers=viewers.count(current_app, stream.public_id),
        moderators=moderation.moderators(db.session, stream),
        moderator_form=moderator_form or ModeratorForm(),
        targets=list_targets(db.session, stream),
        target_form=target_form or TargetForm(formdata=None),
        presets={slug: {"name": p.name, "url": p.url} for slug, p in PRESETS.items()},
        max_targets=config.get("MAX_TARGETS", 5),
        refused=refusals.recent_refusals(db.session, stream),
        describe_refusal=refusals.describe,
    )
    reply = current_app.make_response((page, status))
    reply.headers["Cache-Control"] = "private, no-store"
    grants.sign_owned(reply, [stream])
    return reply


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


@bp.get("/streams/<public_id>/ingest-history")
def ingest_history_json(public_id: str):
    """The last ten minutes of ingest health, for the chart on the stream
    and go-live pages."""
    stream = _owned(public_id)
    config = current_app.config
    reply = jsonify(
        ingest_history.report(
            db.session,
            get_redis(current_app),
            stream.id,
            stream.public_id,
            float(config["HLS_FRAGMENT"]),
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


@bp.post("/streams/<public_id>/reconnect-window")
def set_reconnect_window(public_id: str):
    stream = _owned(public_id)
    form = ReconnectForm()
    if not form.validate_on_submit():
        return _show_page(stream, status=400, reconnect_form=form)
    reconnect.set_reconnect_window(db.session, stream, form.reconnect_window.data)
    db.session.commit()
    flash("Reconnect window saved.")
    return redirect(url_for("streams.show", public_id=public_id))


@bp.post("/streams/<public_id>/end")
def end_broadcast(public_id: str):
    """End the broadcast under way now (the go-live page's Stop, the stream
    page's "End broadcast"): no reconnect window, the replay follows."""
    stream = _owned(public_id)
    if service.end_current_broadcast(db.session, stream, "stopped"):
        flash("Broadcast ended.")
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


@bp.post("/streams/<public_id>/moderators")
def add_moderator(public_id: str):
    """Appoint a chat moderator by the email of their account."""
    stream = _owned(public_id)
    form = ModeratorForm()
    if not form.validate_on_submit():
        return _show_page(stream, moderator_form=form, status=400)
    try:
        appointed = moderation.appoint_moderator(db.session, stream, current_user, form.email.data)
    except ChatRefused as refused:
        db.session.rollback()
        form.email.errors.append(str(refused))
        return _show_page(stream, moderator_form=form, status=refused.status)
    email = appointed.user.email
    db.session.commit()
    flash(f"{email} now moderates this stream's chat.")
    return redirect(url_for("streams.show", public_id=public_id, _anchor="moderators"))


@bp.post("/streams/<public_id>/moderators/<int:moderator_id>/remove")
def remove_moderator(public_id: str, moderator_id: int):
    stream = _owned(public_id)
    try:
        moderation.remove_moderator(db.session, stream, current_user, moderator_id)
    except ChatRefused as refused:
        db.session.rollback()
        abort(refused.status, str(refused))
    db.session.commit()
    flash("Moderator removed.")
    return redirect(url_for("streams.show", public_id=public_id, _anchor="moderators"))


@bp.post("/streams/<public_id>/visibility")
def visibility(public_id: str):
    """Public, unlisted or private (moving it out of or into private moves
    its media between the CDN's public and signed prefixes)."""
    stream = _owned(public_id)
    form = VisibilityForm()
    if not form.validate_on_submit():
        return _show_page(stream, status=400, visibility_form=form)
    access.set_visibility(db.session, stream, form.visibility.data)
    db.session.commit()
    flash(f"The stream is now {stream.visibility}.")
    return redirect(url_for("streams.show", public_id=public_id))


@bp.post("/streams/<public_id>/share-links")
def create_share_link(public_id: str):
    stream = _owned(public_id)
    try:
        access.create_share_link(db.session, stream)
    except ValidationError as exc:
        db.session.rollback()
        flash(exc.message)
        return redirect(url_for("streams.show", public_id=public_id))
    db.session.commit()
    flash("Share link created. Whoever opens it can watch until you revoke it.")
    return redirect(url_for("streams.show", public_id=public_id, _anchor="share-links"))


@bp.post("/streams/<public_id>/share-links/<int:link_id>/revoke")
def revoke_share_link(public_id: str, link_id: int):
    stream = _owned(public_id)
    try:
        link = access.get_share_link(db.session, stream, link_id)
    except NotFound:
        abort(404)
    access.revoke_share_link(db.session, link)
    db.session.commit()
    flash("Share link revoked. It no longer opens the stream.")
    return redirect(url_for("streams.show", public_id=public_id, _anchor="share-links"))
