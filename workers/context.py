"""The Flask app a job runs in: the caller's when there is one (tests,
inline calls), else one app per worker process, built on first use."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from flask import Flask, current_app, has_app_context

_apps: dict[int, Flask] = {}


def process_app() -> Flask:
    """This process's app, created from the environment on first use."""
    app = _apps.get(os.getpid())
    if app is None:
        from studio import config, create_app

        settings = config.from_environ()
        # A worker runs one short job after another: a liveness ping on every
        # connection checkout would be one more round trip per job. A stale
        # connection fails that job, and RQ retries it.
        settings["SQLALCHEMY_ENGINE_OPTIONS"] |= {"pool_pre_ping": False, "pool_recycle": 600}
        app = create_app(settings)
        _apps[os.getpid()] = app
    return app


@contextmanager
def job_app() -> Iterator[Flask]:
    """Yield the app with an app context pushed; the session is removed after."""
    if has_app_context():
        yield current_app._get_current_object()
        return
    app = process_app()
    with app.app_context():
        from studio.extensions import db

        try:
            yield app
        finally:
            db.session.remove()
