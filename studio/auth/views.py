"""Register, log in, log out, and API tokens (pages)."""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import current_user, login_required, login_user, logout_user

from studio.auth import service, sessions
from studio.auth.forms import AccountForm, LoginForm, RegisterForm, TokenForm
from studio.chat.rules import ChatRefused, clean_name, display_name
from studio.errors import NotFound, ValidationError
from studio.extensions import db, login_manager
from studio.models import User

log = logging.getLogger(__name__)
bp = Blueprint("auth", __name__)


@login_manager.user_loader
def load_user(user_id: str) -> User | None:
    # A signed cookie alone is not enough: its session must still be recorded.
    if not user_id.isdigit() or not sessions.is_live(user_id):
        return None
    return db.session.get(User, int(user_id))


def _log_in(user: User) -> bool:
    """Log `user` in with a recorded session; False if the store is down."""
    try:
        sessions.start(user)
    except sessions.SessionStoreDown:
        log.exception("cannot record a session; login refused")
        return False
    login_user(user)
    return True


def _safe_next(target: str | None) -> str:
    # Only same-site paths, so a crafted link cannot bounce a creator elsewhere.
    if (
        target
        and target.startswith("/")
        and not target.startswith("//")
        and not urlsplit(target).netloc
    ):
        return target
    return url_for("streams.index")


OPERATOR_ADDRESS = (
    "This address is an operator's: its account is created with "
    "`flask --app studio users create` on the deployment."
)


@bp.route("/register", methods=["GET", "POST"])
def register():
    form = RegisterForm()
    operators = current_app.config.get("OPERATORS") or []
    if form.validate_on_submit():
        if form.email.data.strip().lower() in operators:
            # Whoever registered an operator's address first would be an
            # operator: those accounts come from the command line.
            form.email.errors.append(OPERATOR_ADDRESS)
            return render_template("auth/register.html", form=form), 400
        try:
            user = service.create_user(db.session, form.email.data, form.password.data)
        except ValidationError as exc:
            db.session.rollback()
            for field, message in exc.fields.items():
                getattr(form, field).errors.append(message)
        else:
            db.session.commit()
            if _log_in(user):
                return redirect(url_for("streams.index"))
            return redirect(url_for("auth.login"))  # the account exists; log in later
    status = 400 if request.method == "POST" else 200
    return render_template("auth/register.html", form=form), status


@bp.route("/login", methods=["GET", "POST"])
def login():
    form = LoginForm()
    if form.validate_on_submit():
        user = service.authenticate(db.session, form.email.data, form.password.data)
        if user is not None:
            if _log_in(user):
                return redirect(_safe_next(request.args.get("next")))
            form.form_errors.append("Logging in is unavailable right now; try again shortly.")
            return render_template("auth/login.html", form=form), 503
        # One message whether the email exists or not.
        form.form_errors.append("Email or password is incorrect.")
    status = 400 if request.method == "POST" else 200
    return render_template("auth/login.html", form=form), status


@bp.post("/logout")
@login_required
def logout():
    sessions.end()  # the cookie's copies stop working too
    logout_user()
    return redirect(url_for("auth.login"))


@bp.route("/account", methods=["GET", "POST"])
@login_required
def account():
    """The signed-in user's display name (what chat shows for them)."""
    form = AccountForm()
    if form.validate_on_submit():
        try:
            name = clean_name(form.display_name.data)
        except ChatRefused as refused:
            form.display_name.errors.append(str(refused))
        else:
            current_user.display_name = name
            db.session.commit()
            flash("Display name saved.")
            return redirect(url_for("auth.account"))
    elif request.method == "GET":
        form.display_name.data = display_name(current_user)
    status = 400 if request.method == "POST" else 200
    return render_template("auth/account.html", form=form), status


@bp.route("/tokens", methods=["GET", "POST"])
@login_required
def tokens():
    form = TokenForm()
    new_token = None
    if form.validate_on_submit():
        _, new_token = service.create_api_token(db.session, current_user, form.name.data or "")
        db.session.commit()
    elif request.method == "POST":
        return render_template(
            "auth/tokens.html", form=form, tokens=service.list_api_tokens(db.session, current_user)
        ), 400
    return render_template(
        "auth/tokens.html",
        form=form,
        new_token=new_token,
        tokens=service.list_api_tokens(db.session, current_user),
    )


@bp.post("/tokens/<int:token_id>/revoke")
@login_required
def revoke_token(token_id: int):
    # The CSRF token is checked by CSRFProtect before any POST view runs.
    try:
        service.revoke_api_token(db.session, current_user, token_id)
    except NotFound:
        abort(404)
    db.session.commit()
    flash("Token revoked.")
    return redirect(url_for("auth.tokens"))
