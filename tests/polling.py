"""Waiting for something outside the test process (a server, a worker, a
subprocess) to reach a state. Browser pages wait with Playwright's `expect`
instead; nothing here sleeps for a fixed time before checking."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def poll(predicate: Callable[[], T], timeout: float = 15.0, interval: float = 0.05) -> T:
    """Call `predicate` until it returns something truthy or `timeout` seconds
    pass; returns its last value (falsy on timeout), for the caller to assert."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    return predicate()


def wait_until(
    predicate: Callable[[], T],
    timeout: float = 15.0,
    what: str = "condition",
    interval: float = 0.1,
) -> T:
    """Like `poll`, but a timeout fails the test, naming `what` was awaited."""
    value = poll(predicate, timeout, interval)
    if not value:
        raise AssertionError(f"timed out after {timeout}s waiting for {what}")
    return value
