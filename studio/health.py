"""Probes for the load balancer and the orchestrator.

`/healthz` answers while the process can serve a request at all (liveness);
`/readyz` also proves PostgreSQL and Redis answer (readiness: take the
instance out of rotation, do not restart it).
"""

from __future__ import annotations

import logging

from flask import Blueprint, jsonify
from sqlalchemy import text

from studio.extensions import db
from studio.redis_client import get_redis

log = logging.getLogger(__name__)
bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    """Liveness: no I/O, so a slow database never gets the process killed."""
    return jsonify(status="ok")


def _check_postgres() -> str | None:
    try:
        db.session.execute(text("SELECT 1"))
        return None
    except Exception as exc:  # any driver error means "not ready"
        db.session.rollback()
        return type(exc).__name__
    finally:
        db.session.remove()


def _check_redis() -> str | None:
    try:
        get_redis().ping()
        return None
    except Exception as exc:  # connection refused, timeout, auth...
        return type(exc).__name__


@bp.get("/readyz")
def readyz():
    """Readiness: 200 when PostgreSQL and Redis answer, else 503 naming the failures."""
    checks = {"postgres": _check_postgres(), "redis": _check_redis()}
    failed = sorted(name for name, error in checks.items() if error)
    if failed:
        log.warning("not ready: %s", ", ".join(f"{n}={checks[n]}" for n in failed))
        return jsonify(status="unavailable", failed=failed), 503
    return jsonify(status="ok", failed=[])
