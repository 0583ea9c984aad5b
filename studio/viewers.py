"""Live viewer counts, the same in every process.

Each watch socket (not the stream owner's) is a member of a Redis sorted set
per stream, `studio:viewers:<public_id>`, scored by the time it was last
marked alive. One thread per socket process re-marks all of its open sockets
in a single pipeline every VIEWER_HEARTBEAT seconds; a member older than
VIEWER_EXPIRY no longer counts, so the sockets of a killed process drop out
on their own. A closed socket is removed at once (if Redis fails then, the
thread removes it on its next pass, not after VIEWER_EXPIRY).

The same thread pushes a `viewers` event on the stream's channel when the
count differs from the one last pushed, or a socket joined or left since
(a joining socket is shown the count of its joining, which nobody else may
have been told), at most once per VIEWER_PUSH_INTERVAL per stream across
all processes (a Redis key taken with SET NX), and raises the open
broadcast's `peak_viewers` to the count.
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Iterable

from flask import Flask
from sqlalchemy import text

from studio import fanout
from studio.extensions import db
from studio.redis_client import get_redis

log = logging.getLogger(__name__)

_EXTENSION = "studio_viewer_counter"
_RAISE_PEAKS = text(
    """
    UPDATE broadcasts AS b SET peak_viewers = v.n
    FROM streams AS s,
         unnest(CAST(:ids AS text[]), CAST(:counts AS integer[])) AS v(public_id, n)
    WHERE b.stream_id = s.id AND s.public_id = v.public_id
      AND b.ended_at IS NULL AND b.peak_viewers < v.n
    """
)


def key(public_id: str) -> str:
    """The sorted set of one stream's viewers (member: socket id, score: last mark)."""
    return f"studio:viewers:{public_id}"


def _pushed_key(public_id: str) -> str:
    return f"studio:viewers:pushed:{public_id}"


def _throttle_key(public_id: str) -> str:
    return f"studio:viewers:throttle:{public_id}"


def _forget_pushed(pipeline, public_id: str) -> None:
    """Queue forgetting the count last pushed for the stream: after a join or
    a leave, the next pass pushes the count even if it equals that one. A
    socket that joined meanwhile was shown the count of its own joining (two,
    say), and must hear that it fell back (to one) although nobody was told two."""
    pipeline.delete(_pushed_key(public_id))


def viewers_message(public_id: str, count: int) -> dict:
    """The event pages receive when a stream's viewer count changes."""
    return {"type": "viewers", "stream": public_id, "viewers": count}


def counts(app: Flask, public_ids: Iterable[str]) -> dict[str, int]:
    """How many live viewers each stream has now (one Redis round trip).

    Redis being down is logged and reads as no viewers: a page still renders.
    """
    ids = list(dict.fromkeys(public_ids))
    if not ids:
        return {}
    since = time.time() - app.config["VIEWER_EXPIRY"]
    try:
        pipe = get_redis(app).pipeline(transaction=False)
        for public_id in ids:
            pipe.zcount(key(public_id), since, "+inf")
        found = pipe.execute()
    except Exception:
        log.warning("viewer counts unavailable", exc_info=True)
        return dict.fromkeys(ids, 0)
    return {public_id: int(n) for public_id, n in zip(ids, found, strict=True)}


def queue_count(pipeline, app: Flask, public_id: str) -> None:
    """Queue the read of one stream's viewer count on `pipeline` (the reply:
    what `count` returns, as an int)."""
    pipeline.zcount(key(public_id), time.time() - app.config["VIEWER_EXPIRY"], "+inf")


def count(app: Flask, public_id: str) -> int:
    """How many live viewers one stream has now."""
    return counts(app, [public_id])[public_id]


class ViewerCounter:
    """This process's open watch sockets, kept alive in Redis by one thread."""

    def __init__(self, app: Flask):
        self._app = app
        self._heartbeat = float(app.config["VIEWER_HEARTBEAT"])
        self._expiry = float(app.config["VIEWER_EXPIRY"])
        self._push_interval = float(app.config["VIEWER_PUSH_INTERVAL"])
        self._token = uuid.uuid4().hex[:12]
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._open: dict[str, set[str]] = defaultdict(set)
        # Sockets that hear the count without being counted (the owner's pages).
        self._following: dict[str, int] = defaultdict(int)
        self._dirty: set[str] = set()
        # Sockets closed while Redis failed: removed on the thread's next pass.
        self._gone: dict[str, set[str]] = defaultdict(set)
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._seen: dict[str, int] = {}
        self.pid = os.getpid()

    def add(self, public_id: str) -> str:
        """Count a new viewer of the stream; returns its socket id."""
        member = f"{self._token}:{next(self._ids)}"
        with self._lock:
            self._open[public_id].add(member)
            self._dirty.add(public_id)
            self._ensure_thread()
        try:
            pipe = get_redis(self._app).pipeline(transaction=False)
            pipe.zadd(key(public_id), {member: time.time()})
            _forget_pushed(pipe, public_id)
            pipe.execute()
        except Exception:
            log.warning("could not count a viewer of %s", public_id, exc_info=True)
        self._wake.set()
        return member

    def remove(self, public_id: str, member: str) -> None:
        """Stop counting the viewer (idempotent)."""
        with self._lock:
            members = self._open.get(public_id)
            if members is not None:
                members.discard(member)
                if not members:
                    del self._open[public_id]
            self._dirty.add(public_id)
        try:
            pipe = get_redis(self._app).pipeline(transaction=False)
            pipe.zrem(key(public_id), member)
            _forget_pushed(pipe, public_id)
            pipe.execute()
        except Exception:
            log.warning("could not uncount a viewer of %s; retrying", public_id, exc_info=True)
            with self._lock:
                self._gone[public_id].add(member)
        self._wake.set()

    def follow(self, public_id: str) -> None:
        """A socket that is told the count but does not count (the owner's):
        this process keeps the stream's count fresh while it is open, even
        when every counted viewer is on another process that dies."""
        with self._lock:
            self._following[public_id] += 1
            self._ensure_thread()

    def unfollow(self, public_id: str) -> None:
        """The end of `follow`."""
        with self._lock:
            self._following[public_id] -= 1
            if self._following[public_id] <= 0:
                del self._following[public_id]

    def _ensure_thread(self) -> None:
        # Started on the first socket: threads do not survive gunicorn's fork.
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name="studio-viewers", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """End the thread (tests; a worker process just exits)."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        next_mark = 0.0
        while not self._stopping.is_set():
            try:
                heartbeat = time.monotonic() >= next_mark
                if heartbeat:
                    self._mark()
                    next_mark = time.monotonic() + self._heartbeat
                self._push_changes(heartbeat)
            except Exception:
                log.warning("viewer count refresh failed", exc_info=True)
            # A join or leave wakes the loop early, but never more often than
            # the push interval: a crowd arriving costs one pass, not one per socket.
            self._stopping.wait(self._push_interval)
            self._wake.wait(max(0.0, next_mark - time.monotonic()))
            self._wake.clear()

    def _mark(self) -> None:
        """Re-mark every open socket of this process, in one pipeline."""
        # Held through the round trip: a socket that leaves meanwhile is
        # removed after its re-mark, never re-marked after its removal.
        with self._lock:
            if not self._open:
                return
            now = time.time()
            pipe = get_redis(self._app).pipeline(transaction=False)
            for public_id, members in self._open.items():
                pipe.zadd(key(public_id), dict.fromkeys(members, now))
                # The set of a stream nobody watches any more goes away by itself.
                pipe.expire(key(public_id), int(self._expiry * 2) + 1)
            pipe.execute()

    def _push_changes(self, heartbeat: bool) -> None:
        """Drop expired viewers of the streams this process serves (or just
        saw a socket leave), push changed counts and raise the peaks."""
        with self._lock:
            gone, self._gone = self._gone, defaultdict(set)
            streams = sorted(set(self._open) | set(self._following) | self._dirty | set(gone))
            self._dirty.clear()
        if not streams:
            return
        redis = get_redis(self._app)
        if gone:
            self._remove_gone(redis, gone)
        since = time.time() - self._expiry
        pipe = redis.pipeline(transaction=False)
        for public_id in streams:
            pipe.zremrangebyscore(key(public_id), "-inf", f"({since}")
            pipe.zcard(key(public_id))
            pipe.get(_pushed_key(public_id))
        replies = pipe.execute()
        current: dict[str, int] = {}
        retry = set()
        for index, public_id in enumerate(streams):
            viewers = int(replies[index * 3 + 1])
            pushed = replies[index * 3 + 2]
            current[public_id] = viewers
            if pushed is not None and int(pushed) == viewers:
                continue
            throttle_ms = max(1, int(self._push_interval * 1000))
            if not redis.set(_throttle_key(public_id), 1, nx=True, px=throttle_ms):
                retry.add(public_id)  # another process pushed a moment ago
                continue
            redis.set(_pushed_key(public_id), viewers, ex=int(self._expiry * 2) + 1)
            fanout.publish(self._app, public_id, viewers_message(public_id, viewers))
        if retry:
            with self._lock:
                self._dirty |= retry
            self._wake.set()  # try again after the push interval, not the heartbeat
        # The database is asked when a count rose here, and on each heartbeat
        # (a broadcast that starts while people already watch has its own peak).
        peaks = {
            public_id: viewers
            for public_id, viewers in current.items()
            if viewers > 0 and (heartbeat or viewers > self._seen.get(public_id, 0))
        }
        self._seen = current
        if peaks:
            self._raise_peaks(peaks)

    def _remove_gone(self, redis, gone: dict[str, set[str]]) -> None:
        """Remove the sockets whose removal failed; on failure, keep them for the next pass."""
        pipe = redis.pipeline(transaction=False)
        for public_id, members in gone.items():
            pipe.zrem(key(public_id), *members)
        try:
            pipe.execute()
        except Exception:
            with self._lock:
                for public_id, members in gone.items():
                    self._gone[public_id] |= members
            raise

    def _raise_peaks(self, peaks: dict[str, int]) -> None:
        """Raise each open broadcast's peak to its stream's count (one statement)."""
        with self._app.app_context():
            try:
                with db.engine.begin() as connection:
                    connection.execute(
                        _RAISE_PEAKS, {"ids": list(peaks), "counts": list(peaks.values())}
                    )
            except Exception:
                log.warning("could not record peak viewers", exc_info=True)


def get_counter(app: Flask) -> ViewerCounter:
    """This process's counter (a new one after a fork)."""
    counter = app.extensions.get(_EXTENSION)
    if counter is None or counter.pid != os.getpid():
        counter = ViewerCounter(app)
        app.extensions[_EXTENSION] = counter
    return counter
