"""Operator pages (`/ops/...`): the media nodes, their live counts, draining.

Only the operators (STUDIO_OPERATORS) see them; to everyone else, signed in
or not, they do not exist (404). The rules live in `studio.media.nodes`.
"""

from __future__ import annotations

from flask import Blueprint, abort, current_app, flash, redirect, render_template, url_for
from flask_login import current_user

from studio.errors import StudioError
from studio.extensions import db
from studio.media import nodes
from studio.models import utcnow
from studio.streams.forms import ActionForm

bp = Blueprint("ops", __name__, url_prefix="/ops")


def is_operator(user) -> bool:
    """Whether `user` is signed in with an e-mail STUDIO_OPERATORS lists."""
    operators = current_app.config.get("OPERATORS") or []
    return bool(user.is_authenticated and user.email.lower() in operators)


@bp.before_request
def _operators_only():
    if not is_operator(current_user):
        abort(404)


@bp.after_request
def _not_cached(response):
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/nodes")
def node_list():
    """Every media node: taking publishers or draining, live streams against
    capacity, whether its engine answers."""
    now = utcnow()
    max_age = nodes.up_max_age(current_app.config)
    rows = [(node, nodes.is_up(node, now, max_age)) for node in nodes.listing(db.session)]
    return render_template("ops/nodes.html", rows=rows, action=ActionForm())


@bp.post("/nodes/<node_id>/drain")
def drain(node_id: str):
    return _set_draining(node_id, True)


@bp.post("/nodes/<node_id>/undrain")
def undrain(node_id: str):
    return _set_draining(node_id, False)


def _set_draining(node_id: str, draining: bool):
    if not ActionForm().validate_on_submit():
        abort(400)
    try:
        node = nodes.set_draining(db.session, node_id, draining)
    except nodes.UnknownNode:
        db.session.rollback()
        abort(404)
    except StudioError as exc:
        db.session.rollback()
        abort(400, exc.message)
    db.session.commit()
    if draining:
        flash(f"Node {node.id} is draining: it takes no new publisher.", "info")
    else:
        flash(f"Node {node.id} takes publishers again.", "info")
    return redirect(url_for("ops.node_list"))
