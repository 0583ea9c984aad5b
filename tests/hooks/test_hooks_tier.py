"""The callback tier (gunicorn_hooks.conf.py): the media servers' callbacks
have gunicorn threads of their own. With every worker of the web tier frozen
(as a burst of slow pages or a stuck worker leaves it), an `on_publish` sent
to the hook URL the engines are given is still accepted well within SRS's
30 s callback timeout, and the stream turns live."""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from mirakuru import SimpleExecutor

from devtools import runner
from devtools.process import free_port
from studio.models import Stream
from tests import stack
from tests.conftest import VAR, load_fixture

pytestmark = pytest.mark.e2e

# Far above a normal answer (milliseconds) and below SRS's 30 s timeout:
# behind a frozen web tier the answer would never come.
ANSWER_WITHIN = 20
# Long enough for any idle worker to answer a liveness probe; a stopped one never does.
FROZEN_PROBE = 3


def worker_pids(master: int) -> list[int]:
    """gunicorn's worker processes: the master's children."""
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    return [int(pid) for pid in children]


@contextlib.contextmanager
def frozen(master: int) -> Iterator[list[int]]:
    """Every worker of the gunicorn `master` stopped (SIGSTOP) until the block
    ends, then resumed (SIGCONT); yields their pids."""
    pids = worker_pids(master)
    assert pids, "gunicorn has no workers"
    try:
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
        yield pids
    finally:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)


@pytest.fixture(scope="module")
def tiers(app, services) -> Iterator[dict[str, SimpleExecutor | int]]:
    """The web tier and the callback tier, as `make dev` runs them."""
    var_dir = VAR / "hooks-tier"
    web_port, hooks_port = free_port(), free_port()
    env = {
        **os.environ,
        "DATABASE_URL": services["database_url"],
        "REDIS_URL": services["redis_url"],
        "STUDIO_SECRET_KEY": "hooks-tier-secret",
        "STUDIO_HOOK_TOKEN": app.config["HOOK_TOKEN"],
        "STUDIO_PUBLIC_URL": f"http://127.0.0.1:{web_port}",
        "STUDIO_NGINX_CONTROL_URL": "http://127.0.0.1:9",
        "STUDIO_LOG_LEVEL": "WARNING",
    }
    with (
        stack.start_gunicorn(env, var_dir, web_port, workers=1, threads=4) as web,
        stack.start_gunicorn(env, var_dir, hooks_port, tier="hooks") as hooks,
    ):
        yield {"web": web, "hooks": hooks, "hooks_port": hooks_port}


def on_publish(engine: str, url: str, stream: Stream) -> requests.Response:
    """The engine's on_publish for `stream` with its current key, as the engine sends it."""
    if engine == "srs":
        body = {
            **load_fixture("on_publish.json"),
            "stream": stream.public_id,
            "param": f"?secret={stream.stream_key}",
        }
        return requests.post(url, json=body, timeout=ANSWER_WITHIN)
    form = {
        "call": "publish",
        "app": "live",
        "name": stream.public_id,
        "clientid": "41",
        "addr": "127.0.0.1",
        "secret": stream.stream_key,
    }
    return requests.post(url, data=form, timeout=ANSWER_WITHIN)


@pytest.mark.parametrize("engine", ["srs", "nginx-rtmp"])
def test_on_publish_is_accepted_while_the_web_tier_is_frozen(tiers, db, make_stream, app, engine):
    """The web tier's workers are stopped (they answer nothing, not even
    /healthz); the engine's on_publish to its hook URL still answers 200
    {"code": 0} and the stream is live. Resumed, the web tier serves again."""
    stream = make_stream()
    url = runner.hook_url(tiers["hooks_port"], engine, app.config["HOOK_TOKEN"])
    web = tiers["web"]
    with frozen(web.process.pid):
        with pytest.raises(requests.exceptions.Timeout):
            requests.get(f"{web.base_url}/healthz", timeout=FROZEN_PROBE)
        reply = on_publish(engine, url, stream)
        assert reply.status_code == 200, reply.text
        assert reply.json()["code"] == 0, reply.text
        db.session.refresh(stream)
        assert stream.status == "live"
    assert requests.get(f"{web.base_url}/healthz", timeout=ANSWER_WITHIN).status_code == 200
