"""The reconciler: make the database agree with what the media engine sees.

SRS sends no callback when it crashes or is stopped, and a callback can be
lost, so every few seconds one pass compares the engine's live publishers
with the database's open broadcasts:

- a broadcast open in the database whose stream the engine no longer has, for
  longer than the grace period, is ended (reason "reconciled");
- a publisher the engine has but the database does not know (for as long) is
  dropped at the engine;
- a new SRS `service` id means SRS restarted: it is logged and counted, and
  broadcasts opened under the old one are ended at once (their publishers
  cannot have survived the restart);
- a broadcast older than MAX_BROADCAST_SECONDS is ended and its publisher
  dropped (the cost guard; reason "duration_limit");
- a reconnecting stream whose deadline passed without a publisher has its
  broadcast ended (reason "reconnect_timeout"; `studio/streams/reconnect.py`).
  This comes first and needs no engine: deadlines pass while it is down too.
  A reconnecting broadcast is missing from the engine by design, so the
  grace period does not apply to it.

With a pool of media nodes (STUDIO_MEDIA_NODES) each node's engine is asked
about the streams it holds (`streams.node_id`; a stream without one counts
as `default`'s), with its own service id and marks. A node whose engine has
not answered for the grace period while other nodes do is dead: its live
streams end (reason "node_down": `reconnecting` when they have a reconnect
window, their encoders come back through the pool's address to another
node); other nodes' streams are untouched. When no node answers (the
studio's own network is the likelier fault), or on a single node, an
unreachable engine changes nothing.

Run `python -m workers.reconcile --loop` (the `reconciler` container role;
why a loop and not an RQ scheduled job: see `workers/__init__.py`), or
`python -m workers.reconcile` for one pass. Passes are idempotent; a Redis
lock keeps two reconcilers from running a pass at the same time.
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from flask import Flask
from redis.backoff import EqualJitterBackoff
from sqlalchemy import func, select

from studio import ingest_history, metrics
from studio.extensions import db
from studio.media import engines, nodes
from studio.models import Broadcast, Stream
from studio.redis_client import get_redis
from studio.streams import reconnect, service
from workers.context import job_app, process_app

log = logging.getLogger("workers.reconcile")

SERVICE_KEY = "studio:reconcile:srs-service"
MISSING_KEY = "studio:reconcile:missing"  # broadcast id -> first seen missing (epoch s)
UNKNOWN_KEY = "studio:reconcile:unknown"  # "stream/client" -> first seen unknown
DOWN_KEY = "studio:reconcile:node-down"  # node id -> first seen unreachable
LOCK_KEY = "studio:reconcile:lock"


def node_key(key: str, node_id: str) -> str:
    """A node's own copy of a per-engine key (`default` keeps the plain key)."""
    return key if node_id == nodes.DEFAULT_NODE else f"{key}:{node_id}"


@dataclass
class Report:
    """What one pass did (for logs and tests)."""

    engine_error: bool = False
    engine_restarted: bool = False
    ended: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    over_duration: list[str] = field(default_factory=list)
    reconnect_timeouts: list[str] = field(default_factory=list)
    # Nodes whose engine did not answer this pass, and those found dead.
    unreachable: list[str] = field(default_factory=list)
    nodes_down: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class OpenBroadcast:
    id: int
    stream: str
    client_id: str
    server_id: str
    service_id: str
    started_at: datetime
    reconnecting: bool = False
    node_id: str = nodes.DEFAULT_NODE


def reconcile(now: float | None = None) -> Report:
    """One reconcile pass (called by the loop, or once by `main`). Never raises for
    an unreachable engine: that is counted and the pass changes nothing."""
    with job_app() as app:
        return _reconcile(app, time.time() if now is None else now)


def _reconcile(app: Flask, now: float) -> Report:
    report = Report()
    report.reconnect_timeouts = _expire_reconnects(now)
    pool = _pool(app)
    redis = get_redis(app)
    by_node: dict[str, list[OpenBroadcast]] = {}
    for broadcast in _open_broadcasts():
        by_node.setdefault(broadcast.node_id, []).append(broadcast)
    snapshots = {}
    for node_id in pool:
        try:
            snapshots[node_id] = engines.for_node(node_id, app).stats()
        except engines.EngineError as exc:
            log.warning("media node %s unreachable (%s)", node_id, exc)
            report.unreachable.append(node_id)
    report.engine_error = bool(report.unreachable)
    metrics.RECONCILE_RUNS.labels("engine_error" if report.unreachable else "ok").inc()
    _note_seen(redis, list(snapshots), now)
    for node_id, seen in snapshots.items():
        _reconcile_node(app, redis, node_id, seen, by_node.get(node_id, []), now, report)
    # A node is dead only while others answer: no answer at all is more
    # likely the studio's own network (and a single node has nowhere else
    # for its publishers to go).
    if snapshots and len(pool) > 1:
        grace = float(app.config.get("RECONCILE_GRACE_SECONDS", 30))
        for node_id in report.unreachable:
            if now - _first_seen(redis, DOWN_KEY, node_id, now) >= grace:
                _end_node(node_id, by_node.get(node_id, []), report)
    if report.ended or report.dropped or report.over_duration or report.reconnect_timeouts:
        log.info(
            "reconciled: ended=%s dropped=%s over_duration=%s reconnect_timeouts=%s",
            report.ended,
            report.dropped,
            report.over_duration,
            report.reconnect_timeouts,
        )
    return report


def _pool(app: Flask) -> list[str]:
    """Every media node's id: the configured ones (synced into the table on
    the way) and those an operator added."""
    nodes.sync(db.session, nodes.configured(app.config))
    pool = [node.id for node in nodes.listing(db.session)]
    db.session.commit()
    return pool


def _note_seen(redis, answered: list[str], now: float) -> None:
    """Nodes that answered are up: their outage marks go, `last_seen_at` is now."""
    if not answered:
        return
    redis.hdel(DOWN_KEY, *answered)
    nodes.mark_seen(db.session, answered, datetime.fromtimestamp(now, UTC))
    db.session.commit()


def _reconcile_node(
    app: Flask,
    redis,
    node_id: str,
    seen: engines.EngineSnapshot,
    open_broadcasts: list[OpenBroadcast],
    now: float,
    report: Report,
) -> None:
    """The pass for one node: its engine's publishers against its open broadcasts."""
    engine = engines.for_node(node_id, app)
    if _note_service(redis, node_id, seen.service_id):
        report.engine_restarted = True
    _note_health(redis, seen.publishers, now)
    live_names = {publisher.stream_name for publisher in seen.publishers}
    grace = float(app.config.get("RECONCILE_GRACE_SECONDS", 30))
    max_seconds = int(app.config.get("MAX_BROADCAST_SECONDS", 0) or 0)

    still_open = set()
    for broadcast in open_broadcasts:
        age = now - broadcast.started_at.timestamp()
        if max_seconds and age >= max_seconds:
            _end(broadcast, "duration_limit", drop=broadcast.stream in live_names, engine=engine)
            report.over_duration.append(broadcast.stream)
            continue
        if broadcast.stream in live_names or broadcast.reconnecting:
            redis.hdel(MISSING_KEY, broadcast.id)
            still_open.add(broadcast.stream)
            continue
        if _outlived_restart(broadcast, seen.service_id) or (
            age >= grace and now - _first_seen(redis, MISSING_KEY, broadcast.id, now) >= grace
        ):
            _end(broadcast, "reconciled", drop=False, engine=engine)
            report.ended.append(broadcast.stream)
            continue
        still_open.add(broadcast.stream)

    unknown_key = node_key(UNKNOWN_KEY, node_id)
    for publisher in seen.publishers:
        if publisher.stream_name in still_open:
            continue
        member = f"{publisher.stream_name}/{publisher.client_id}"
        if now - _first_seen(redis, unknown_key, member, now) >= grace:
            _drop_unknown(publisher, engine)
            redis.hdel(unknown_key, member)
            report.dropped.append(publisher.stream_name)
    _forget_stale_marks(redis, unknown_key, seen, still_open)


def _end_node(node_id: str, open_broadcasts: list[OpenBroadcast], report: Report) -> None:
    """A dead node's live broadcasts end (reconnecting where a window allows)."""
    report.nodes_down.append(node_id)
    for broadcast in open_broadcasts:
        if broadcast.reconnecting:
            continue  # already waiting for its publisher (on any node)
        _end(broadcast, reconnect.NODE_DOWN, drop=False)
        report.ended.append(broadcast.stream)
    if open_broadcasts:
        log.warning("media node %s is down: its %d stream(s) ended", node_id, len(open_broadcasts))


def _note_health(redis, publishers: list[engines.IngestStats], now: float) -> None:
    """One ingest-health sample per live publisher (the creator's chart)."""
    for publisher in publishers:
        ingest_history.record(
            redis,
            publisher.stream_name,
            ingest_history.Sample(
                at=now,
                kbps=publisher.kbps,
                fps=publisher.fps,
                audio=bool(publisher.audio_codec),
                bytes_in=publisher.bytes_in,
            ),
        )


def _open_broadcasts() -> list[OpenBroadcast]:
    rows = db.session.execute(
        select(
            Broadcast.id,
            Stream.public_id,
            Broadcast.client_id,
            Broadcast.server_id,
            Broadcast.service_id,
            Broadcast.started_at,
            Stream.status == "reconnecting",
            func.coalesce(Stream.node_id, nodes.DEFAULT_NODE),
        )
        .join(Stream, Stream.id == Broadcast.stream_id)
        .where(Broadcast.ended_at.is_(None))
    ).all()
    db.session.rollback()  # read-only: do not hold a transaction across the pass
    return [OpenBroadcast(*row) for row in rows]


def _expire_reconnects(now: float) -> list[str]:
    """End the broadcasts whose reconnect deadline passed (see module doc)."""
    ended = reconnect.expire_reconnects(db.session, datetime.fromtimestamp(now, UTC))
    db.session.commit()
    for stream in ended:
        metrics.RECONCILE_ACTIONS.labels("reconnect_timeout").inc()
        log.info("broadcast of stream %s ended: nobody reconnected in time", stream)
    return ended


def _note_service(redis, node_id: str, service_id: str) -> bool:
    """Remember a node's engine's service id; True (logged, counted) when it changed."""
    if not service_id:
        return False
    previous = redis.getset(node_key(SERVICE_KEY, node_id), service_id)
    previous = previous.decode() if previous else ""
    if previous and previous != service_id:
        metrics.ENGINE_RESTARTS.inc()
        log.warning(
            "media engine of node %s restarted: service id %s -> %s",
            node_id,
            previous,
            service_id,
        )
        return True
    return False


def _outlived_restart(broadcast: OpenBroadcast, service_id: str) -> bool:
    """A broadcast opened under an earlier SRS process cannot still be publishing."""
    return bool(service_id and broadcast.service_id and broadcast.service_id != service_id)


def _first_seen(redis, key: str, member, now: float) -> float:
    redis.hsetnx(key, member, now)
    return float(redis.hget(key, member))


def _end(
    broadcast: OpenBroadcast, reason: str, drop: bool, engine: engines.MediaEngine | None = None
) -> None:
    """End the broadcast in the database, then (after commit) drop its
    publisher at `engine` (its node's)."""
    ended = service.end_broadcast(
        db.session, broadcast.stream, broadcast.client_id, broadcast.server_id, reason=reason
    )
    db.session.commit()
    get_redis().hdel(MISSING_KEY, broadcast.id)
    if ended is None:
        return  # an unpublish got there first
    metrics.RECONCILE_ACTIONS.labels(
        "duration_limit" if reason == "duration_limit" else "ended"
    ).inc()
    log.info("broadcast %s of stream %s ended: %s", broadcast.id, broadcast.stream, reason)
    if drop and engine is not None:
        target = engines.Publisher(broadcast.stream, broadcast.client_id, broadcast.server_id)
        try:
            engine.drop_publisher(target)
        except engines.EngineError as exc:
            # The publisher is now unknown to the database: the next pass drops it.
            log.warning("drop of %s failed: %s", broadcast.stream, exc)


def _drop_unknown(publisher: engines.IngestStats, engine: engines.MediaEngine) -> None:
    target = engines.Publisher(publisher.stream_name, publisher.client_id)
    try:
        engine.drop_publisher(target)
    except engines.EngineError as exc:
        log.warning("drop of unknown publisher %s failed: %s", publisher.stream_name, exc)
        return
    metrics.RECONCILE_ACTIONS.labels("dropped").inc()
    log.warning(
        "dropped publisher unknown to the database: stream=%s client=%s",
        publisher.stream_name,
        publisher.client_id,
    )


def _forget_stale_marks(
    redis, unknown_key: str, seen: engines.EngineSnapshot, still_open: set[str]
) -> None:
    """Marks of publishers that left, or became known, must not age into a drop later."""
    current = {f"{p.stream_name}/{p.client_id}" for p in seen.publishers}
    for member in redis.hkeys(unknown_key):
        name = member.decode()
        if name not in current or name.split("/", 1)[0] in still_open:
            redis.hdel(unknown_key, name)


# --- the loop process --------------------------------------------------------


def run_forever(app: Flask, stop: threading.Event) -> None:
    """A pass every RECONCILE_INTERVAL seconds until `stop` is set.

    Redis or PostgreSQL being down (or restarting) never ends the loop: the
    failure is logged and counted, the next attempt backs off exponentially
    (with jitter, up to RECONCILE_BACKOFF_MAX seconds), and passes resume on
    their interval once both answer again.
    """
    interval = float(app.config.get("RECONCILE_INTERVAL", 15))
    backoff = EqualJitterBackoff(
        cap=max(interval, float(app.config.get("RECONCILE_BACKOFF_MAX", 30))), base=interval
    )
    failures = 0
    while not stop.is_set():
        try:
            _locked_pass(app, interval)
        except Exception as exc:  # an outage must not end the loop
            metrics.RECONCILE_RUNS.labels("error").inc()
            delay = backoff.compute(failures)
            failures += 1
            if failures == 1:
                log.exception("reconcile pass failed; retrying in %.1fs", delay)
            else:
                log.warning("reconcile pass failed again (%s); retrying in %.1fs", exc, delay)
            stop.wait(delay)
            continue
        if failures:
            log.info("reconcile passes resumed after %d failed attempts", failures)
            failures = 0
        stop.wait(interval)


def _locked_pass(app: Flask, interval: float) -> None:
    """One pass under the cross-replica lock; raises what Redis or the database raise."""
    with app.app_context():
        try:
            # One reconciler at a time across replicas; the lock expires by itself.
            if get_redis().set(LOCK_KEY, "1", nx=True, ex=max(1, int(interval))):
                reconcile()
        finally:
            # A connection broken by a database restart is dropped from the
            # pool here, so the next pass connects afresh.
            db.session.remove()


def main(argv: list[str] | None = None) -> int:
    """`python -m workers.reconcile [--loop]`: one pass, or passes until SIGTERM."""
    parser = argparse.ArgumentParser(prog="python -m workers.reconcile")
    parser.add_argument("--loop", action="store_true", help="run until SIGTERM/SIGINT")
    options = parser.parse_args(argv)
    app = process_app()
    if not options.loop:
        with app.app_context():
            print(reconcile())
        return 0
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    log.info("reconciler running every %ss", app.config.get("RECONCILE_INTERVAL", 15))
    run_forever(app, stop)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
