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
        from studio import create_app

        app = create_app()
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
