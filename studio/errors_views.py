"""Error pages for people and JSON errors for machines."""

from __future__ import annotations

import logging

from flask import Flask, jsonify, render_template, request
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from studio.extensions import db

log = logging.getLogger(__name__)

# Shown when even the error page cannot be rendered.
PLAIN_ERROR = "<!doctype html><title>{code}</title><h1>{code}</h1><p>{message}</p>"


def _wants_json() -> bool:
    return request.path.startswith(("/api/", "/hooks/"))


def _error_page(code: int, message: str):
    """The error page; after a database error the session is rolled back
    first, since the page reads the logged-in user (base.html). Should the
    page still fail, a bare page says the same, rather than an empty 500."""
    if code >= 500:
        _rollback()
    try:
        return render_template("error.html", code=code, message=message), code
    except Exception:
        log.exception("the error page itself failed")
        _rollback()
        text = PLAIN_ERROR.format(code=code, message="The studio could not complete the request.")
        return text, code, {"Content-Type": "text/html; charset=utf-8"}


def _rollback() -> None:
    try:
        db.session.rollback()
    except Exception:
        log.exception("rollback after an error failed")


def init_app(app: Flask) -> None:
    @app.errorhandler(CSRFError)
    def csrf_error(error: CSRFError):
        message = "The form expired or is missing its security token; reload and try again."
        if _wants_json():
            return jsonify(error=message), 400
        return _error_page(400, message)

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        message = error.description or error.name
        if _wants_json():
            if error.code and error.code >= 500:
                _rollback()
            # Keep `Allow` on a 405 so a client can see which methods exist.
            allow = [(k, v) for k, v in error.get_headers() if k == "Allow"]
            return jsonify(error=message), error.code, allow
        return _error_page(error.code or 500, message)
