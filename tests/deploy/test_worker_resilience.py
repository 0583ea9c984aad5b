"""The worker role (`entrypoint.sh worker`) rides out a Redis restart with
its retries intact, and exits 0 on SIGTERM at any point of its start-up."""

from __future__ import annotations

import json
import signal

import pytest
import redis as redis_lib
import requests
from rq import Queue, Retry, Worker
from rq.job import Job, JobStatus

from devtools.process import free_port
from devtools.services import start_redis
from tests.conftest import VAR
from tests.deploy.test_entrypoint import fresh_database, role_env, run_role  # noqa: F401
from tests.polling import wait_until

QUEUE = "resilience"


def scheduler_running(connection: redis_lib.Redis) -> bool:
    """RQ's scheduler holds its lock for our queue."""
    return bool(connection.exists(f"rq:scheduler-lock:{QUEUE}"))


def test_retries_resume_soon_after_a_redis_restart(services, fresh_database):  # noqa: F811
    """Redis restarts under an idle worker (RQ's scheduler dies with the
    connection); a job that fails once with Retry(interval=1) then runs its
    retry within seconds, not at RQ's next 10-minute maintenance pass."""
    redis_server = start_redis(VAR)
    redis_port = int(redis_server.url.rsplit(":", 1)[1].split("/")[0])
    port = free_port()
    env = role_env(
        {**services, "redis_url": redis_server.url},
        fresh_database,
        STUDIO_METRICS_PORT=str(port),
        STUDIO_RQ_QUEUES=QUEUE,
        STORAGE_EMULATOR_HOST="http://127.0.0.1:9",
    )
    try:
        with run_role("worker", env, port, timeout=60) as (process, log):
            connection = redis_lib.Redis.from_url(redis_server.url)
            wait_until(lambda: scheduler_running(connection), 60, "RQ's scheduler")

            redis_server.stop()
            wait_until(
                lambda: "Scheduler [PID" in log.read_text() and process.poll() is None,
                60,
                "the scheduler to die with its Redis connection",
            )
            redis_server = start_redis(VAR, port=redis_port)
            connection = redis_lib.Redis.from_url(redis_server.url)

            queue = Queue(QUEUE, connection=connection, serializer="rq.serializers.JSONSerializer")
            job = queue.enqueue(
                "tests.deploy.flaky_jobs.fail_first_attempt",
                "resilience:runs",
                retry=Retry(max=1, interval=1),
            )

            def finished() -> bool:
                assert process.poll() is None, log.read_text()
                return Job.fetch(job.id, connection=connection).get_status() == JobStatus.FINISHED

            # RQ alone would retry at its maintenance pass, 600 s later.
            wait_until(finished, 60, "the retried job to finish")
            assert int(connection.get("resilience:runs")) == 2
    finally:
        redis_server.stop()


def worker_env(services, database_url: str, metrics_port: int) -> dict[str, str]:
    """The worker role on QUEUE, its metrics on `metrics_port`, no bucket."""
    return role_env(
        services,
        database_url,
        STUDIO_METRICS_PORT=str(metrics_port),
        STUDIO_RQ_QUEUES=QUEUE,
        STORAGE_EMULATOR_HOST="http://127.0.0.1:9",
    )


def wait_registered(redis_url: str) -> bool:
    connection = redis_lib.Redis.from_url(redis_url)
    return any(QUEUE in worker.queue_names() for worker in Worker.all(connection=connection))


@pytest.mark.parametrize("moment", ["metrics_port", "registered", "scheduler_started"])
def test_worker_exits_0_on_sigterm_during_start_up(services, fresh_database, redis, moment):  # noqa: F811
    """SIGTERM as soon as the metrics port answers (imports and warm-up still
    running), right after the worker registered in Redis (before RQ installs
    its signal handlers), and once its scheduler runs: each a clean exit 0."""
    port = free_port()
    env = worker_env(services, fresh_database, port)
    with run_role("worker", env, port, timeout=60) as (process, log):
        if moment == "metrics_port":
            assert requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).ok
        elif moment == "registered":
            wait_until(lambda: wait_registered(services["redis_url"]), 60, "registration", 0.01)
        else:
            wait_until(lambda: scheduler_running(redis), 60, "RQ's scheduler")
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
    # run_role asserts the exit status: 0.


def _scheduler_that_lost_its_sigterm(ready) -> None:
    """A scheduler process whose SIGTERM goes to an inherited handler."""
    import signal as signals
    import time as clock

    signals.signal(signals.SIGTERM, lambda *_: None)
    ready.set()
    while True:
        clock.sleep(0.1)


def test_a_stopping_worker_does_not_wait_for_ever_on_its_scheduler(redis):
    """A scheduler forked just before the stop may miss the SIGTERM RQ sends
    it: the worker still stops (it kills the scheduler), instead of joining
    it for ever."""
    from multiprocessing import get_context
    from multiprocessing.context import ForkProcess

    from rq import Queue
    from rq.scheduler import RQScheduler

    from workers import rq_worker

    worker = rq_worker.UploadWorker([Queue("resilience", connection=redis)], connection=redis)
    worker.scheduler = RQScheduler(["resilience"], connection=redis)
    ready = get_context("fork").Event()
    process = ForkProcess(target=_scheduler_that_lost_its_sigterm, args=(ready,))
    process.start()
    assert ready.wait(30)
    worker.scheduler._process = process
    worker.stop_scheduler()
    assert not process.is_alive()


def test_a_warm_stop_swallowed_by_a_logging_call_is_raised_again(redis):
    """RQ raises StopRequested from its SIGTERM handler in whatever an idle
    worker runs; inside a logging call, logging swallows it ("--- Logging
    error ---") and RQ's idle loop never looks at the stop flag. The worker
    remembers the stop and its next heartbeat (at least every 5 s when idle)
    raises it again, so the warm stop is not lost."""
    from rq.exceptions import StopRequested
    from rq.worker import WorkerStatus

    from workers import rq_worker

    worker = rq_worker.UploadWorker([Queue("resilience", connection=redis)], connection=redis)
    worker.set_state(WorkerStatus.IDLE)
    try:
        worker.request_stop(signal.SIGTERM, None)
    except StopRequested:
        pass  # what logging.Handler.handleError does with it
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
    with pytest.raises(StopRequested):
        worker.heartbeat()


def test_a_busy_worker_finishes_its_job_before_the_heartbeat_stops_it(redis):
    """A stop during a job waits for the job (RQ's rule): the heartbeats sent
    while it runs do not raise."""
    from rq.worker import WorkerStatus

    from workers import rq_worker

    worker = rq_worker.UploadWorker([Queue("resilience", connection=redis)], connection=redis)
    worker.set_state(WorkerStatus.BUSY)
    try:
        worker.request_stop(signal.SIGTERM, None)
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
    assert worker._stop_requested
    worker.heartbeat()  # does not raise while busy


def test_a_job_not_ready_yet_is_one_warning_not_an_error(services, fresh_database, redis):  # noqa: F811
    """A job that raises TryAgainLater (a deleted stream's files still being
    written) with a retry left is one warning line naming it and its reason,
    with no traceback, and runs again; out of retries it is an error with
    its traceback, as any failure (alerts watch errors)."""
    port = free_port()
    env = worker_env(services, fresh_database, port)
    with run_role("worker", env, port, timeout=60) as (process, log):
        queue = Queue(QUEUE, connection=redis, serializer="rq.serializers.JSONSerializer")
        later = queue.enqueue(
            "tests.deploy.flaky_jobs.not_ready_yet", "later:runs", retry=Retry(max=1, interval=1)
        )
        never = queue.enqueue("tests.deploy.flaky_jobs.never_ready")

        def status(job: Job) -> JobStatus:
            return Job.fetch(job.id, connection=redis).get_status()

        wait_until(
            lambda: status(later) == JobStatus.FINISHED and status(never) == JobStatus.FAILED,
            60,
            "the retried job to finish and the other to fail",
        )
    records = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    records = [r for r in records if r["severity"] in ("WARNING", "ERROR", "CRITICAL")]
    about = {job.id: [r for r in records if job.id in r["message"]] for job in (later, never)}
    assert [r["severity"] for r in about[later.id]] == ["WARNING"]
    assert "files still being written" in about[later.id][0]["message"]
    assert "Traceback" not in json.dumps(about[later.id])
    errors = [r for r in about[never.id] if r["severity"] == "ERROR"]
    assert errors and "Traceback" in json.dumps(errors)
    assert int(redis.get("later:runs")) == 2
