"""The multistream process: relays each live stream to its enabled targets.

It keeps one relay (`workers/relays.py`: a process copying the engine's RTMP
playback to the target, its key never on a command line) per enabled target of each live
stream, and nothing else:

- it wakes on the streams' Redis channels (`studio.fanout`: a status change,
  targets added, changed or removed) and at least every `POLL_INTERVAL`
  seconds, and compares the relays it runs with the database
  (`targets.relays_due`): it starts the missing ones, stops the extra ones
  (broadcast ended, target disabled or deleted) and restarts a relay whose
  URL or key changed;
- each relay's state (connecting, live, retrying with the last error,
  stopped) is written to the target's row, where the API and the stream page
  read it, and announced (`TargetStateChanged`, `TargetFailed`);
- one process relays at a time across replicas (a Redis lock that expires on
  its own if the holder dies); a replica that loses it stops its relays
  without writing their state (the new holder does), and on start the
  holder marks every target it does not run `stopped`.

Why relays and not SRS's dynamic forward: docs/multistream.md.
Run `python -m workers.multistream` (the `multistream` container role).
"""

from __future__ import annotations

import json
import logging
import signal
import threading
import time
from collections.abc import Callable

from flask import Flask
from redis.backoff import EqualJitterBackoff

from studio import secretbox
from studio.extensions import db
from studio.fanout import channel
from studio.redis_client import get_redis
from studio.streams import targets
from studio.streams.tickets import mint_play_grant
from workers.context import process_app
from workers.relays import RelayRunner

log = logging.getLogger("workers.multistream")

LOCK_KEY = "studio:multistream:lock"
LOCK_TTL = 15  # seconds; renewed on every pass
POLL_INTERVAL = 2.0
# Channel messages that can change which relays are due.
WAKE_TYPES = frozenset({"status", "targets"})


def playback_source(base: str, secret_key: str, stream: str) -> Callable[[], str]:
    """The engine's RTMP playback URL of `stream`, a fresh one per relay
    attempt: the media server asks the studio (on_play) before it plays a
    private stream to anyone, and the relay proves itself with a play grant,
    which expires soon."""
    return lambda: f"{base}/{stream}?grant={mint_play_grant(secret_key, stream)}"


class Multistream:
    """The relays this process runs, kept in line with the database."""

    def __init__(self, app: Flask):
        self.app = app
        self.running: dict[int, RelayRunner] = {}
        self.source_base = app.config["RTMP_PLAYBACK_URL"].rstrip("/")
        self.secret_key = app.config["SECRET_KEY"]
        self.retry_max = float(app.config.get("TARGET_RETRY_MAX", 30.0))
        self.allow_private = bool(app.config.get("TARGET_ALLOW_PRIVATE", False))
        self.box = secretbox.from_config(app.config)

    def sync(self) -> None:
        """Start, stop and restart relays so that exactly the due ones run."""
        with self.app.app_context():
            try:
                due = {relay.target_id: relay for relay in targets.relays_due(db.session, self.box)}
                db.session.commit()
                self._stop(
                    [
                        target_id
                        for target_id, runner in self.running.items()
                        if _identity(due.get(target_id)) != _identity(runner.relay)
                    ]
                )
                for target_id, relay in due.items():
                    if target_id not in self.running:
                        self._start(relay)
                targets.stop_others(db.session, set(self.running))
                db.session.commit()
            finally:
                db.session.remove()

    def stop_all(self, record: bool = True) -> None:
        """Stop every relay; record them stopped unless another process now
        holds the lock (its states are its own to write)."""
        ids = list(self.running)
        self._stop(ids)
        if not record or not ids:
            return
        with self.app.app_context():
            try:
                for target_id in ids:
                    targets.record_state(db.session, target_id, "stopped")
                db.session.commit()
            except Exception:
                log.exception("relays stopped, but their state was not recorded")
            finally:
                db.session.remove()

    def _start(self, relay: targets.Relay) -> None:
        source = playback_source(self.source_base, self.secret_key, relay.stream)
        runner = RelayRunner(
            relay, source, self._recorder(relay), self.retry_max, allow_private=self.allow_private
        )
        self.running[relay.target_id] = runner.start()
        log.info("relay to target %s of stream %s started", relay.target_id, relay.stream)

    def _stop(self, target_ids: list[int]) -> None:
        runners = [self.running.pop(target_id) for target_id in target_ids]
        for runner in runners:  # all at once, then wait for each
            runner.stop()
        for runner in runners:
            runner.join()
            log.info("relay to target %s stopped", runner.relay.target_id)

    def _recorder(self, relay: targets.Relay):
        def record(state: str, error: str | None) -> None:
            with self.app.app_context():
                try:
                    targets.record_state(db.session, relay.target_id, state, error)
                    db.session.commit()
                finally:
                    db.session.remove()

        return record


def _identity(relay: targets.Relay | None) -> tuple | None:
    """What makes a relay a different one (a new name is not)."""
    return None if relay is None else (relay.stream, relay.url, relay.key)


def _wanted(message: dict | None) -> bool:
    """A stream's status changed, or its targets did (not merely a relay's
    state, which this process itself reported)."""
    if message is None or message.get("type") != "pmessage":
        return False
    try:
        event = json.loads(message["data"])
        return event.get("type") in WAKE_TYPES and "target" not in event
    except (ValueError, AttributeError):
        return False


def run_forever(app: Flask, stop: threading.Event) -> None:
    """Keep relays in line until `stop` is set; then stop them all.

    Redis or PostgreSQL being down never ends the loop: running relays go
    on, the failure is logged, and the next attempt backs off (up to 30 s).
    """
    multistream = Multistream(app)
    backoff = EqualJitterBackoff(cap=30.0, base=1.0)
    failures = 0
    pubsub = None
    lock = None
    try:
        while not stop.is_set():
            try:
                if pubsub is None:
                    redis = get_redis(app)
                    lock = redis.lock(LOCK_KEY, timeout=LOCK_TTL, thread_local=False)
                    pubsub = redis.pubsub(ignore_subscribe_messages=True)
                    pubsub.psubscribe(channel("*"))
                if not _hold(lock):
                    if multistream.running:
                        log.warning("another multistream process relays now; stopping ours")
                        multistream.stop_all(record=False)
                    stop.wait(POLL_INTERVAL)
                    continue
                multistream.sync()
                _wait_for_news(pubsub, stop)
                failures = 0
            except Exception as exc:  # an outage must not end the loop
                delay = backoff.compute(failures)
                failures += 1
                log.warning("multistream pass failed (%s); retrying in %.1fs", exc, delay)
                if pubsub is not None:
                    pubsub.close()
                pubsub = None
                stop.wait(delay)
    finally:
        holding = lock is not None and _owned(lock)
        multistream.stop_all(record=holding)
        if holding:
            lock.release()
        if pubsub is not None:
            pubsub.close()


def _owned(lock) -> bool:
    try:
        return bool(lock.owned())
    except Exception:  # Redis down at shutdown: nothing more to do
        return False


def _hold(lock) -> bool:
    """Take the cross-replica lock, or renew it if this process holds it."""
    if lock.local.token is not None and lock.owned():
        return bool(lock.reacquire())
    return bool(lock.acquire(blocking=False))


def _wait_for_news(pubsub, stop: threading.Event) -> None:
    """Return when a message that may change the due relays arrives, after
    POLL_INTERVAL seconds, or when stopped."""
    deadline = time.monotonic() + POLL_INTERVAL
    while not stop.is_set():
        left = deadline - time.monotonic()
        if left <= 0:
            return
        if _wanted(pubsub.get_message(timeout=min(left, 0.5))):
            return


def main(argv: list[str] | None = None) -> int:
    """`python -m workers.multistream`: relays until SIGTERM/SIGINT."""
    app = process_app()
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    log.info("multistream relays reading from %s", app.config["RTMP_PLAYBACK_URL"])
    run_forever(app, stop)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
