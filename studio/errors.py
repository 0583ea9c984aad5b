"""Domain errors raised by services and turned into responses by the views."""

from __future__ import annotations


class StudioError(Exception):
    """Base class: a rule refused the operation; nothing was changed."""

    status = 400

    def __init__(self, message: str, fields: dict[str, str] | None = None):
        super().__init__(message)
        self.message = message
        self.fields = fields or {}


class ValidationError(StudioError):
    status = 400


class NotFound(StudioError):
    status = 404
