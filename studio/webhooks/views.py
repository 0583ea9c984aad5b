"""The Webhooks pages: list and add (the secret shown once), an endpoint's
delivery log, "Send test event", delete. The rules live in
`studio.webhooks.service`; deliveries are queued for the workers."""

from __future__ import annotations

from flask import Blueprint, abort, current_app, flash, redirect, render_template, url_for
from flask_login import current_user, login_required

from studio import secretbox
from studio.errors import NotFound, ValidationError
from studio.extensions import db
from studio.redis_client import get_redis
from studio.streams.forms import ActionForm
from studio.webhooks import addresses, announce, service
from studio.webhooks.forms import WebhookForm

bp = Blueprint("webhooks", __name__)


@bp.before_request
@login_required
def _logged_in():
    """Every page here is the creator's own."""


@bp.after_request
def _not_cached(response):
    """The pages show a new secret once and the creator's URLs: never cached."""
    response.headers["Cache-Control"] = "no-store"
    return response


def _owned(endpoint_id: int):
    try:
        return service.get_owned_endpoint(db.session, current_user, endpoint_id)
    except NotFound:
        abort(404)


def _index(form: WebhookForm, new_secret: str | None = None, new_id: int | None = None):
    return render_template(
        "webhooks/index.html",
        form=form,
        action=ActionForm(),
        endpoints=service.list_endpoints(db.session, current_user),
        new_secret=new_secret,
        new_id=new_id,
    )


@bp.route("/webhooks", methods=["GET", "POST"])
def index():
    form = WebhookForm()
    if not form.is_submitted():
        return _index(form)
    if not form.validate():
        return _index(form), 400
    allowed = addresses.networks(current_app.config.get("WEBHOOK_ALLOWED_NETWORKS", []))
    try:
        box = secretbox.from_config(current_app.config)
        endpoint, secret = service.create_endpoint(
            db.session, box, current_user, form.url.data, form.events.data or [], allowed
        )
    except ValidationError as exc:
        db.session.rollback()
        for name, message in exc.fields.items():
            getattr(form, name).errors = [message]
        if not exc.fields:
            form.url.errors = [exc.message]
        return _index(form), 400
    db.session.commit()
    # The secret is in this response only; reloading the page shows it no more.
    return _index(WebhookForm(formdata=None), secret, endpoint.id), 201


@bp.get("/webhooks/<int:endpoint_id>")
def show(endpoint_id: int):
    endpoint = _owned(endpoint_id)
    return render_template(
        "webhooks/show.html",
        endpoint=endpoint,
        deliveries=service.list_deliveries(db.session, endpoint),
        action=ActionForm(),
    )


@bp.get("/webhooks/<int:endpoint_id>/log")
def log(endpoint_id: int):
    """The delivery log's rows, re-fetched by the page."""
    endpoint = _owned(endpoint_id)
    return render_template(
        "webhooks/_deliveries.html", deliveries=service.list_deliveries(db.session, endpoint)
    )


@bp.post("/webhooks/<int:endpoint_id>/test")
def send_test(endpoint_id: int):
    # The CSRF token is checked by CSRFProtect before any POST view runs.
    endpoint = _owned(endpoint_id)
    if announce.send_test(get_redis(), endpoint.id):
        flash("Test event queued: its delivery appears in the log below within seconds.")
    else:
        flash(f"A test event was just sent; wait {announce.TEST_INTERVAL} seconds.", "error")
    return redirect(url_for("webhooks.show", endpoint_id=endpoint.id))


@bp.post("/webhooks/<int:endpoint_id>/delete")
def delete(endpoint_id: int):
    endpoint = _owned(endpoint_id)
    service.delete_endpoint(db.session, endpoint)
    db.session.commit()
    flash("Webhook deleted.")
    return redirect(url_for("webhooks.index"))
