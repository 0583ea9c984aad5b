"""One log line per event, with the request id when there is one."""

from __future__ import annotations

import logging
import sys
import uuid

from flask import Flask, g, has_request_context, request


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = g.get("request_id", "-") if has_request_context() else "-"
        return True


def configure_logging(app: Flask) -> None:
    """Log to stderr as `time level logger [request id] message`."""
    root = logging.getLogger()
    if not any(getattr(h, "_studio", False) for h in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler._studio = True  # type: ignore[attr-defined]
        handler.addFilter(RequestIdFilter())
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s")
        )
        root.addHandler(handler)
    root.setLevel(app.config.get("LOG_LEVEL", "INFO"))

    @app.before_request
    def _request_id() -> None:
        incoming = request.headers.get("X-Request-Id", "")
        g.request_id = incoming[:64] if incoming.isprintable() and incoming else uuid.uuid4().hex

    @app.after_request
    def _echo_request_id(response):
        response.headers["X-Request-Id"] = g.get("request_id", "")
        return response
