"""The RQ worker class of the upload pipeline.

A SimpleWorker (jobs run in the worker process: no fork per job) that builds
the Flask app, its database pool and the storage client before taking its
first job, so the first segments of a stream do not wait for imports.
Start: `rq worker-pool -w workers.rq_worker.UploadWorker -S json uploads`.
"""

from __future__ import annotations

import logging
import os

from rq.worker import SimpleWorker

log = logging.getLogger(__name__)


class UploadWorker(SimpleWorker):
    def bootstrap(self, *args, **kwargs):
        # RQ gives its own loggers plain-text handlers of their own unless a
        # handler is already in effect: route them to the process's JSON lines.
        from studio.logging_setup import configure_process_logging, unify_library_loggers

        configure_process_logging(os.environ.get("STUDIO_LOG_LEVEL", "INFO"))
        unify_library_loggers("rq.worker", "rq.job", "rq.scheduler", "rq.worker_pool")
        return super().bootstrap(*args, **kwargs)

    def work(self, *args, **kwargs):
        warm_up()
        return super().work(*args, **kwargs)


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
    import workers.purge  # noqa: F401 (imports the job modules before the first job)
    import workers.replay  # noqa: F401
    import workers.sync  # noqa: F401
    import workers.thumbnails  # noqa: F401
