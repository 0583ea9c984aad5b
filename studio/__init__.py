"""Live Studio: the Flask application factory.

Importing the package itself loads nothing else (Flask and the extensions
come with `create_app`), so a process that only needs, say, the log
formatter (gunicorn's master of the gevent socket tier, before gevent
patches the standard library) stays light.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flask import Flask
    from flask_openapi3 import OpenAPI


def create_app(config: Mapping | None = None) -> Flask:
    """Build the app: settings, extensions, blueprints, logging. No I/O here."""
    from flask_openapi3 import OpenAPI

    from studio import config as studio_config
    from studio.api.openapi import app_options
    from studio.extensions import csrf, db, login_manager, migrate, sock
    from studio.logging_setup import configure_logging

    # flask-openapi3's Flask subclass: it collects the JSON API's OpenAPI document.
    app = OpenAPI(__name__, **app_options())
    app.config.update(studio_config.from_environ() if config is None else config)
    if not app.config.get("SECRET_KEY"):
        raise RuntimeError("STUDIO_SECRET_KEY must be set.")
    configure_logging(app)

    db.init_app(app)
    from studio import database

    database.init_app(app)  # the idle-connection ping; no I/O
    migrate.init_app(app, db, directory=str(app.config.get("MIGRATIONS_DIR", _migrations())))
    from studio.auth.sessions import CookieSessions

    app.session_interface = CookieSessions()
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    login_manager.session_protection = "strong"
    csrf.init_app(app)
    sock.init_app(app)

    _register_blueprints(app)
    _register_commands(app)
    from studio import errors_views, fanout, input_guard, metrics, observability, security
    from studio.media import engines, pipeline
    from studio.webhooks import announce

    errors_views.init_app(app)
    observability.init_app(app)
    security.init_app(app)  # after the blueprints: it wraps their views
    # The engine, and who hears the domain's events after each commit; no I/O.
    engines.init_app(app)
    fanout.init_app(app)
    pipeline.init_app(app)
    announce.init_app(app)
    metrics.count_domain_events()
    input_guard.init_app(app)  # last: its check must run before every other
    return app


def _migrations() -> str:
    from pathlib import Path

    return str(Path(__file__).resolve().parent.parent / "migrations")


def _register_blueprints(app: OpenAPI) -> None:
    from studio.api import chat as _api_chat  # noqa: F401 (adds the chat routes to the API)
    from studio.api import targets  # noqa: F401 (adds the multistream routes to the API)
    from studio.api import webhooks as _api_webhooks  # noqa: F401 (its routes join api_bp)
    from studio.api.views import bp as api_bp
    from studio.auth.views import bp as auth_bp
    from studio.health import bp as health_bp
    from studio.hooks.views import bp as hooks_bp
    from studio.live.ingest import bp as ingest_bp
    from studio.live.views import bp as live_bp
    from studio.ops.views import bp as ops_bp
    from studio.streams import (
        golive,  # noqa: F401 (adds the go-live routes to streams)
        multistream,  # noqa: F401 (adds the multistream routes)
    )
    from studio.streams.views import bp as streams_bp
    from studio.watch.views import bp as watch_bp
    from studio.webhooks.views import bp as webhooks_bp

    for blueprint in (
        auth_bp,
        streams_bp,
        watch_bp,
        hooks_bp,
        live_bp,
        health_bp,
        webhooks_bp,
        ops_bp,
    ):
        app.register_blueprint(blueprint)
    app.register_api(api_bp)  # registers the blueprint and adds it to the document
    app.register_blueprint(ingest_bp)


def _register_commands(app: Flask) -> None:
    from studio.cli import register

    register(app)
