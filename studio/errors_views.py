"""Error pages for people and JSON errors for machines."""

from __future__ import annotations

from flask import Flask, jsonify, render_template, request
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException


def _wants_json() -> bool:
    return request.path.startswith(("/api/", "/hooks/"))


def init_app(app: Flask) -> None:
    @app.errorhandler(CSRFError)
    def csrf_error(error: CSRFError):
        message = "The form expired or is missing its security token; reload and try again."
        if _wants_json():
            return jsonify(error=message), 400
        return render_template("error.html", code=400, message=message), 400

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        message = error.description or error.name
        if _wants_json():
            # Keep `Allow` on a 405 so a client can see which methods exist.
            allow = [(k, v) for k, v in error.get_headers() if k == "Allow"]
            return jsonify(error=message), error.code, allow
        return render_template("error.html", code=error.code, message=message), error.code
