"""Structured logs: one JSON object per line, in every process.

Each line has `time`, `severity` (the field Google Cloud Logging reads),
`logger`, `message`, and `request_id` inside a web request or `job_id`
inside an RQ job. `STUDIO_LOG_FORMAT=text` gives a one-line human format
for reading a terminal; JSON is the default everywhere.
"""

from __future__ import annotations

import logging
import os
import sys
import uuid
from typing import TYPE_CHECKING

from pythonjsonlogger.json import JsonFormatter

if TYPE_CHECKING:
    from flask import Flask

TEXT_FORMAT = "%(asctime)s %(severity)s %(logger)s [%(request_id)s%(job_id)s] %(message)s"
# Loggers whose INFO lines are every process's start-up chatter, not events
# (alembic names each of its plugins as Flask-Migrate imports it).
CHATTY_LOGGERS = ("alembic.runtime.plugins",)


class ContextFilter(logging.Filter):
    """Adds what a line needs to be traced: the request or job it belongs to."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.severity = record.levelname
        record.logger = record.name
        flask = sys.modules.get("flask")  # a process without Flask has no requests
        in_request = flask is not None and flask.has_request_context()
        record.request_id = flask.g.get("request_id", "") if in_request else ""
        record.job_id = _current_job_id()
        return True


# Kept for callers that only need the request id on a record.
RequestIdFilter = ContextFilter


def _current_job_id() -> str:
    job_module = sys.modules.get("rq.job")  # never import RQ into a web process
    if job_module is None:
        return ""
    try:
        job = job_module.get_current_job()
    except Exception:  # no connection or no job context: not a job's line
        return ""
    return job.id if job is not None else ""


class StudioJsonFormatter(JsonFormatter):
    """JSON lines with the fields above; empty context fields are left out."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("timestamp", "time")
        kwargs.setdefault("rename_fields", {"exc_info": "stack_trace"})
        super().__init__("%(severity)s %(logger)s %(message)s", *args, **kwargs)

    def process_log_record(self, log_record: dict) -> dict:
        for key in ("request_id", "job_id"):
            if not log_record.get(key):
                log_record.pop(key, None)
        return super().process_log_record(log_record)


def make_formatter(style: str | None = None) -> logging.Formatter:
    """The process's formatter: JSON unless STUDIO_LOG_FORMAT=text."""
    style = style or os.environ.get("STUDIO_LOG_FORMAT", "json")
    if style == "text":
        return logging.Formatter(TEXT_FORMAT)
    return StudioJsonFormatter()


def make_handler() -> logging.Handler:
    """The one stderr handler of a process (also named in gunicorn.conf.py)."""
    handler = logging.StreamHandler(sys.stderr)
    handler._studio = True  # type: ignore[attr-defined]
    handler.addFilter(ContextFilter())
    handler.setFormatter(make_formatter())
    return handler


def configure_process_logging(level: str | int = "INFO") -> None:
    """Send every logger of this process to stderr through one handler
    (idempotent: a second call only changes the level)."""
    root = logging.getLogger()
    if not any(getattr(h, "_studio", False) for h in root.handlers):
        root.addHandler(make_handler())
    root.setLevel(level)
    for name in CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


def unify_library_loggers(*names: str) -> None:
    """Drop the handlers a library gave its own loggers, so their records reach
    the process's single handler (RQ installs coloured text handlers)."""
    for name in names:
        logger = logging.getLogger(name)
        for handler in list(logger.handlers):
            logger.removeHandler(handler)
        logger.propagate = True


def configure_logging(app: Flask) -> None:
    """Process logging at the app's level, plus a request id for every request
    (the caller's `X-Request-Id` when it is sane, else a new one), echoed back."""
    from flask import g, request

    configure_process_logging(app.config.get("LOG_LEVEL", "INFO"))

    @app.before_request
    def _request_id() -> None:
        incoming = request.headers.get("X-Request-Id", "")
        g.request_id = incoming[:64] if incoming.isprintable() and incoming else uuid.uuid4().hex

    @app.after_request
    def _echo_request_id(response):
        response.headers["X-Request-Id"] = g.get("request_id", "")
        return response
