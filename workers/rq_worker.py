"""The RQ worker class of the upload pipeline.

A SimpleWorker (jobs run in the worker process: no fork per job) that builds
the Flask app, its database pool and the storage client before taking its
first job, so the first segments of a stream do not wait for imports.
Start: `rq worker-pool -w workers.rq_worker.UploadWorker -S json uploads`.

Two things RQ 3.0 leaves to its 10-minute maintenance pass are done here
within seconds:

- RQ's scheduler (a forked process that moves retries and scheduled jobs to
  their queue) dies on the first Redis error, e.g. a Redis restart. Every
  heartbeat (at least every SCHEDULER_CHECK_SECONDS, also when idle) checks
  it and starts it again, so `Retry(interval=...)` keeps its promise.
- A Redis outage outside RQ's blocking dequeue (maintenance, the heartbeat
  after a job) is waited out with backoff instead of ending the worker.
- SIGTERM before RQ has installed its handlers (imports, warm-up, start-up)
  ends the worker cleanly with exit status 0 instead of killing it.
- A warm stop is never lost: RQ raises StopRequested from its signal handler
  in whatever the idle worker is doing, and when that is a logging call, the
  logging module swallows it (and the worker would idle on until a second
  signal). The request is also remembered, and the next heartbeat (at least
  every SCHEDULER_CHECK_SECONDS) raises it again.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
from collections.abc import Callable
from types import FrameType
from typing import TypeVar

import redis.exceptions
from redis.client import Pipeline
from rq.exceptions import StopRequested
from rq.job import Job
from rq.job_lifecycle import call_exception_handlers
from rq.worker import SimpleWorker, WorkerStatus

from studio.media.jobs import TryAgainLater

log = logging.getLogger(__name__)

SCHEDULER_CHECK_SECONDS = 5
# At most one heartbeat of the worker, and one look at `rq suspend`, per this
# many seconds (outside jobs).
HEARTBEAT_SECONDS = 1.0
# How long a stopping worker waits for its scheduler process after SIGTERM.
SCHEDULER_STOP_SECONDS = 5.0
T = TypeVar("T")


class UploadWorker(SimpleWorker):
    _early_stop_signal: int | None = None
    _scheduler_checked_at = 0.0
    _heartbeat_at = float("-inf")
    _suspension_checked_at = float("-inf")

    def bootstrap(self, *args, **kwargs):
        # RQ gives its own loggers plain-text handlers of their own unless a
        # handler is already in effect: route them to the process's JSON lines.
        from studio.logging_setup import configure_process_logging, unify_library_loggers

        configure_process_logging(os.environ.get("STUDIO_LOG_LEVEL", "INFO"))
        unify_library_loggers("rq.worker", "rq.job", "rq.scheduler", "rq.worker_pool")
        return super().bootstrap(*args, **kwargs)

    def work(self, *args, **kwargs) -> bool:
        """Warm up, then RQ's work loop; a stop requested meanwhile is honoured."""
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, _exit_cleanly)
        warm_up()
        # From here RQ registers the worker and forks its scheduler: exiting at
        # once would leave both behind, so remember the signal and let RQ's
        # loop stop (and clean up) on its first turn.
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._remember_stop)
        return super().work(*args, **kwargs)

    def _remember_stop(self, signum: int, frame: FrameType | None) -> None:
        self._early_stop_signal = signum

    def _install_signal_handlers(self) -> None:
        super()._install_signal_handlers()
        if self._early_stop_signal is not None:
            self.log.info("Worker %s: stop requested during start-up", self.name)
            self._stop_requested = True

    @property
    def dequeue_timeout(self) -> int:
        # An idle worker wakes (and heartbeats) this often, so a dead
        # scheduler is noticed without waiting for a job.
        return min(super().dequeue_timeout, SCHEDULER_CHECK_SECONDS)

    def _shutdown(self) -> None:
        if self.get_state() != WorkerStatus.BUSY:
            self._stop_requested = True  # in case what RQ raises next is swallowed
        super()._shutdown()

    def heartbeat(self, timeout: int | None = None, pipeline: Pipeline | None = None) -> None:
        if pipeline is not None:
            super().heartbeat(timeout, pipeline)
            return
        if self._stop_requested and self.get_state() != WorkerStatus.BUSY:
            raise StopRequested()
        # RQ beats up to four times per job, three round trips each; the
        # worker's key lives at least a minute, so one beat a second is plenty.
        if time.monotonic() - self._heartbeat_at >= HEARTBEAT_SECONDS:
            self._through_outages(super().heartbeat, timeout)
            self._heartbeat_at = time.monotonic()
        self._through_outages(self.revive_scheduler)

    def check_for_suspension(self, burst: bool) -> None:
        # Asked before every job (a pipeline and a heartbeat each time):
        # `rq suspend` taking effect within a second is soon enough.
        if time.monotonic() - self._suspension_checked_at < HEARTBEAT_SECONDS:
            return
        self._through_outages(super().check_for_suspension, burst)
        self._suspension_checked_at = time.monotonic()

    def run_maintenance_tasks(self) -> None:
        self._through_outages(super().run_maintenance_tasks)

    def handle_exception(self, job: Job, *exc_info) -> None:
        """A job that asked to be tried again later (`TryAgainLater`) and
        will be is one warning line, not an error with a traceback (alerts
        watch errors). Out of retries, RQ logs it as any failure."""
        if isinstance(exc_info[1], TryAgainLater) and job.should_retry:
            self.log.warning("job %s (%s) tried later: %s", job.id, job.func_name, exc_info[1])
            call_exception_handlers(self._exc_handlers, job, *exc_info)
            return
        super().handle_exception(job, *exc_info)

    def _through_outages(self, call: Callable[..., T], *args: object) -> T:
        """`call(*args)`, retried with backoff while Redis is unreachable.

        RQ's loop waits out a Redis outage only around its blocking dequeue;
        anywhere else (heartbeat after a job, maintenance, the suspension
        check) the first connection error would end the worker.
        """
        wait = 1.0
        while True:
            try:
                return call(*args)
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
                if self._stop_requested:
                    raise
                self.log.error(
                    "Worker %s: Redis unreachable (%s); retrying in %.0fs", self.name, exc, wait
                )
                time.sleep(wait)
                wait = min(wait * self.exponential_backoff_factor, self.max_connection_wait_time)

    def stop_scheduler(self) -> None:
        """Stop the scheduler process: SIGTERM, then SIGKILL if it is still there.

        RQ only joins it after SIGTERM; a SIGTERM that reaches the freshly
        forked scheduler before it installs its own handlers runs the worker's
        handler instead, is lost, and the join would wait for ever.
        """
        process = self.scheduler._process if self.scheduler else None
        if process is None or not process.pid:
            return
        with contextlib.suppress(OSError):
            os.kill(process.pid, signal.SIGTERM)
        process.join(SCHEDULER_STOP_SECONDS)
        if process.is_alive():
            log.warning("RQ scheduler (pid %s) ignored SIGTERM; killing it", process.pid)
            process.kill()
            process.join()

    def revive_scheduler(self) -> None:
        """Start RQ's scheduler again if its process died (it does on any Redis
        error); also takes over the scheduler lock another worker let expire.
        Raises what Redis raises (RQ's loop retries on connection errors)."""
        scheduler = self.scheduler
        if scheduler is None or self._stop_requested:
            return
        process = scheduler._process
        if process is not None and process.is_alive():
            return
        if time.monotonic() - self._scheduler_checked_at < SCHEDULER_CHECK_SECONDS:
            return
        self._scheduler_checked_at = time.monotonic()
        scheduler.acquire_locks(auto_start=True)
        if process is not None and scheduler._process is not process:
            log.warning("RQ scheduler (pid %s) had died; started again", process.pid)


def _exit_cleanly(signum: int, frame: FrameType | None) -> None:
    """Nothing is registered yet: stopping now is a clean stop (exit 0)."""
    raise SystemExit(0)


def warm_up() -> None:
    """Create the app, connect to the database and the bucket's client."""
    from sqlalchemy import text

    from studio.extensions import db
    from studio.storage import gcs
    from workers.context import process_app

    app = process_app()
    with app.app_context():
        try:
            db.session.execute(text("SELECT 1"))
        except Exception:  # the database may come later; jobs will retry
            log.warning("database not reachable at worker start")
        finally:
            db.session.remove()
        gcs.get_storage(app.config)
    # The job modules, imported before the first job rather than during it.
    import workers.jobs  # noqa: F401
    import workers.pipeline.finalize  # noqa: F401
    import workers.pipeline.purge  # noqa: F401
    import workers.pipeline.thumbnails  # noqa: F401
    import workers.webhooks  # noqa: F401
