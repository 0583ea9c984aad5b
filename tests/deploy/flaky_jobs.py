"""Jobs for the worker role tests, imported by the worker from the checkout."""

from __future__ import annotations

from rq import get_current_job


def fail_first_attempt(counter_key: str) -> int:
    """Fail on the first run, succeed on the next (counts runs in Redis)."""
    runs = get_current_job().connection.incr(counter_key)
    if runs == 1:
        raise RuntimeError("first attempt fails on purpose")
    return runs


def not_ready_yet(counter_key: str) -> int:
    """Not ready on the first run (TryAgainLater), done on the next."""
    from studio.media.jobs import TryAgainLater

    runs = get_current_job().connection.incr(counter_key)
    if runs == 1:
        raise TryAgainLater("files still being written")
    return runs


def never_ready() -> None:
    from studio.media.jobs import TryAgainLater

    raise TryAgainLater("files still being written")
