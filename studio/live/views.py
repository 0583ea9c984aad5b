"""Websockets: live status pushed to the watch page and the creator's page."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("live", __name__)
