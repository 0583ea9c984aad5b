"""Jobs for the worker role tests, imported by the worker from the checkout."""

from __future__ import annotations

from rq import get_current_job


def fail_first_attempt(counter_key: str) -> int:
    """Fail on the first run, succeed on the next (counts runs in Redis)."""
    runs = get_current_job().connection.incr(counter_key)
    if runs == 1:
        raise RuntimeError("first attempt fails on purpose")
    return runs
