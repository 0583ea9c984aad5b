"""The stream page's Multistream section: add a target (with presets for
YouTube, Twitch and Facebook), enable or disable it, remove it, and the list
of targets with each relay's state, re-fetched by the page when the socket
says they changed. Routes live on the streams blueprint (owner only); the
rules are `studio.streams.targets`'."""

from __future__ import annotations

from flask import abort, current_app, flash, redirect, render_template, request, url_for

from studio import secretbox
from studio.errors import NotFound, ValidationError
from studio.extensions import db
from studio.streams import targets
from studio.streams.forms import TargetForm
from studio.streams.views import _owned, _show_page, bp


def _target(stream, target_id: int):
    try:
        return targets.get_target(db.session, stream, target_id)
    except NotFound:
        abort(404)


@bp.get("/streams/<public_id>/targets")
def target_rows(public_id: str):
    """The target rows of the stream page (state, last error), re-fetched live."""
    stream = _owned(public_id)
    reply = current_app.make_response(
        render_template(
            "streams/_targets.html",
            stream=stream,
            targets=targets.list_targets(db.session, stream),
            form=TargetForm(),
        )
    )
    reply.headers["Cache-Control"] = "no-store"
    return reply


@bp.post("/streams/<public_id>/targets")
def add_target(public_id: str):
    stream = _owned(public_id)
    form = TargetForm()
    if form.validate_on_submit():
        try:
            targets.add_target(
                db.session,
                stream,
                secretbox.from_config(current_app.config),
                name=form.name.data,
                url=form.url.data,
                key=form.key.data,
                enabled=form.enabled.data,
                limit=int(current_app.config.get("MAX_TARGETS", 5)),
                allow_private=bool(current_app.config.get("TARGET_ALLOW_PRIVATE")),
            )
        except ValidationError as exc:
            db.session.rollback()
            for field, message in exc.fields.items():
                getattr(form, field).errors.append(message)
            if not exc.fields:
                form.form_errors.append(exc.message)
        else:
            db.session.commit()
            flash(f"Target “{form.name.data.strip()}” added.")
            return redirect(url_for("streams.show", public_id=public_id) + "#multistream")
    return _show_page(stream, target_form=form, status=400)


@bp.post("/streams/<public_id>/targets/<int:target_id>/enabled")
def enable_target(public_id: str, target_id: int):
    stream = _owned(public_id)
    target = _target(stream, target_id)
    value = request.form.get("enabled")
    if value not in {"0", "1"}:
        abort(400, "The form must send enabled=1 (enable) or enabled=0 (disable).")
    box = secretbox.from_config(current_app.config)
    targets.update_target(db.session, target, box, {"enabled": value == "1"})
    db.session.commit()
    return redirect(url_for("streams.show", public_id=public_id) + "#multistream")


@bp.post("/streams/<public_id>/targets/<int:target_id>/delete")
def delete_target(public_id: str, target_id: int):
    stream = _owned(public_id)
    target = _target(stream, target_id)
    name = target.name
    targets.delete_target(db.session, target)
    db.session.commit()
    flash(f"Target “{name}” removed.")
    return redirect(url_for("streams.show", public_id=public_id) + "#multistream")
