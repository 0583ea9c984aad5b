"""Background work of the studio.

- `jobs`: the RQ jobs (queue, timeout, retries declared once each), run by
  `rq_worker.UploadWorker`; they call into `pipeline` (the upload pipeline,
  one-way dependencies, see its docstring).
- `watcher`: a process; inotify on the HLS directory triggers syncs, and its
  sweeps re-trigger what was left behind and queue missing replays.
- `reconcile`: a process; a pass every RECONCILE_INTERVAL seconds.

The watcher's sweeps and the reconciler stay loops in their own processes
rather than RQ scheduled jobs: RQ 3.0's `rq cron` scheduler exits on the
first Redis connection error (a Redis restart ends it), and RQ's
worker-side scheduler (`enqueue_in`) dies the same way and would have to
keep a self-re-enqueueing chain alive, which ends for good when one link is
lost. The loops wait out Redis and PostgreSQL outages with backoff, and the
reconciler's passes do not queue behind an upload backlog on the workers.
Jobs take primitive arguments and are idempotent.
"""
