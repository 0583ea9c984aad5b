"""The socket tier's workers run under gevent (gunicorn -k gevent patches the
standard library): a query there must wait through gevent, so one socket's
database read never stops the process's other sockets."""

from __future__ import annotations

import subprocess
import sys
import textwrap

QUERY_WHILE_TICKING = textwrap.dedent(
    """
    import sys
    from gevent import monkey

    monkey.patch_all()  # what gunicorn's gevent worker does first

    import gevent
    import psycopg

    ticks = []

    def tick():
        while True:
            ticks.append(1)
            gevent.sleep(0.01)

    ticker = gevent.spawn(tick)
    gevent.sleep(0)
    with psycopg.connect(sys.argv[1], autocommit=True) as connection:
        before = len(ticks)
        connection.execute("SELECT pg_sleep(0.5)")
        during = len(ticks) - before
    ticker.kill()
    print(during)
    """
)


def test_a_query_under_gevent_lets_other_greenlets_run(app, db):
    """While one greenlet waits half a second for PostgreSQL, another keeps
    running (a blocking driver would hold the whole process: 0 ticks)."""
    url = db.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    result = subprocess.run(
        [sys.executable, "-c", QUERY_WHILE_TICKING, url],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert int(result.stdout.strip()) > 0, result.stderr
