"""A job for the worker-process log test: it only logs one line."""

from __future__ import annotations

import logging

log = logging.getLogger("tests.log_jobs")


def say(word: str) -> str:
    """Log `word` at WARNING (the level the test runs the worker at)."""
    log.warning("job says %s", word)
    return word
