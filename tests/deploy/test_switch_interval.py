"""The web tier's workers switch threads every millisecond (Python's
default is 5 ms): a request back from PostgreSQL or Redis waits less for
the interpreter's lock (docs/benchmarks.md, "API latency"). The callback
tier keeps the default: the callbacks' latency did not move with it."""

from __future__ import annotations

import pytest

from tests.deploy.gunicorn_server import probe_config

PROBE = """
import runpy, sys
config = runpy.run_path(sys.argv[1])
before = sys.getswitchinterval()
config["post_worker_init"](None)
print(before, sys.getswitchinterval())
"""


def test_a_web_worker_switches_threads_every_millisecond():
    before, after = map(float, probe_config(PROBE, "gunicorn.conf.py").split())
    assert before == pytest.approx(0.005)
    assert after == pytest.approx(0.001)
