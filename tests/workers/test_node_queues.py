"""Media nodes: the segment work of node X goes to X's own queues
(`segments.X`, `replays.X`), where only X's workers (beside X's HLS
directory) take it; the default node keeps today's queues."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import timedelta

import pytest
from rq import SimpleWorker
from rq.serializers import JSONSerializer

from devtools import runner
from studio.media import jobs, pipeline
from studio.models import Segment, utcnow
from studio.storage import layout
from studio.streams import service as streams
from tests import launch
from tests.conftest import load_fixture
from workers.watcher import Watcher


def _queued(redis, name: str) -> list[tuple[str, list]]:
    queue = pipeline.media_queue(redis, name)
    return [(job.func_name, job.args) for job in queue.get_jobs()]


def _all_queued(redis) -> dict[str, list]:
    """Every non-empty RQ queue but the webhooks' (events of the streams the
    tests make) and what it holds."""
    names = [key.decode().removeprefix("rq:queue:") for key in redis.keys("rq:queue:*")]
    return {
        name: _queued(redis, name)
        for name in names
        if name != jobs.WEBHOOKS and _queued(redis, name)
    }


def _run_worker(redis, queues) -> None:
    queues = [pipeline.media_queue(redis, name) for name in queues]
    SimpleWorker(queues, connection=redis, serializer=JSONSerializer).work(burst=True)


def test_node_queue_names():
    """Node X's work has queues of its own; the default node keeps today's
    names, so a single machine sees no change."""
    assert jobs.node_queue(jobs.UPLOADS, "node-1") == "segments.node-1"
    assert jobs.node_queue(jobs.REPLAYS, "node-1") == "replays.node-1"
    assert jobs.node_queue(jobs.UPLOADS, "default") == "uploads"
    assert jobs.node_queues("node-1") == ("segments.node-1", "replays.node-1")
    assert jobs.node_queues("default") == ("uploads", "replays", "webhooks")


@pytest.mark.parametrize("node_id", ["", "Node", "a_b", "a\n", "a\x00", "x" * 33, "../x", None])
def test_a_bad_node_id_is_refused_and_queues_nothing(redis, node_id):
    """A node id that is not 1-32 of a-z, 0-9, - is refused with a clear
    error before anything is written."""
    with pytest.raises(ValueError, match="not a media node id"):
        pipeline.request_sync(redis, "cam_1", node_id)
    with pytest.raises(ValueError, match="not a media node id"):
        jobs.node_queues(node_id)
    assert redis.keys("*") == []


def test_webhooks_have_no_node_queue():
    """Only segment work is per node: webhooks stay shared."""
    with pytest.raises(ValueError, match="no queue per media node"):
        jobs.node_queue(jobs.WEBHOOKS, "node-1")


def test_a_sync_for_a_node_goes_to_its_queue_only(redis):
    """A sync asked of node-1 waits in segments.node-1 (with the declared
    timeout and retries), and the stream is known to have its files there."""
    assert pipeline.request_sync(redis, "cam_1", "node-1")
    assert _all_queued(redis) == {"segments.node-1": [(pipeline.SYNC_JOB, ["cam_1"])]}
    job = pipeline.media_queue(redis, "segments.node-1").get_jobs()[0]
    assert (job.timeout, job.retry_intervals) == (300, [1, 5, 15])
    assert pipeline.files_node(redis, "cam_1") == "node-1"


def test_the_default_node_keeps_todays_queue_and_keys(redis):
    """A sync without a node (one machine) goes to `uploads` and writes no
    node key."""
    assert pipeline.request_sync(redis, "cam_1")
    assert _all_queued(redis) == {"uploads": [(pipeline.SYNC_JOB, ["cam_1"])]}
    assert redis.get(pipeline.Keys.node("cam_1")) is None
    assert pipeline.files_node(redis, "cam_1") == "default"


def test_replay_and_purge_follow_the_node_of_the_files(redis):
    """The replay of a broadcast and the purge of a deleted stream read the
    stream's local files: they go to the replays queue of the node its last
    sync was queued for; a stream no node asked about goes to the shared one."""
    pipeline.request_sync(redis, "cam_2", "node-2")
    pipeline.request_finalize(redis, 7, "cam_2")
    pipeline.request_purge(redis, "cam_2")
    pipeline.request_finalize(redis, 8, "cam_9")
    queued = _all_queued(redis)
    assert queued["replays.node-2"] == [
        (pipeline.FINALIZE_JOB, [7]),
        (pipeline.PURGE_JOB, ["cam_2"]),
    ]
    assert queued["replays"] == [(pipeline.FINALIZE_JOB, [8])]


def test_on_hls_of_a_node_syncs_on_that_node(pipeline_app, redis, live_stream):
    """An engine's segment report from node-1 queues the sync on
    segments.node-1; a bad node id raises before anything is written."""
    stream, _, _ = live_stream
    segment = pipeline.SegmentReady(
        stream=stream.public_id,
        app="live",
        client_id="c1",
        seq=3,
        duration=2.0,
        path=f"/hls/live/{stream.public_id}-3.ts",
    )
    before = _all_queued(redis)
    with pytest.raises(ValueError):
        pipeline.segment_ready(redis, segment, "Bad Node")
    assert redis.keys("studio:media:*") == []
    assert _all_queued(redis) == before
    assert pipeline.segment_ready(redis, segment, "node-1")
    assert _all_queued(redis) == {"segments.node-1": [(pipeline.SYNC_JOB, [stream.public_id])]}


def test_a_nodes_watcher_and_workers_upload_its_files(
    pipeline_app, redis, bucket, live_stream, monkeypatch
):
    """The watcher of node-1 queues its stream's sync on node-1's queue:
    workers of the shared queues leave it; node-1's workers upload it."""
    stream, broadcast, hls = live_stream
    monkeypatch.setitem(pipeline_app.config, "NODE_ID", "node-1")
    hls.add_segment(1, mtime=time.time() - 60)
    hls.write_playlist([1])
    watcher = Watcher(pipeline_app)

    assert watcher.sweep() == 1
    assert _all_queued(redis) == {"segments.node-1": [(pipeline.SYNC_JOB, [stream.public_id])]}
    _run_worker(redis, jobs.node_queues("default"))
    _run_worker(redis, jobs.node_queues("node-2"))
    assert hls.local_names() == [f"{stream.public_id}-1.ts"]

    _run_worker(redis, jobs.node_queues("node-1"))
    assert bucket.get(layout.segment(stream.public_id, broadcast.id, 1))[0] == 200
    assert hls.local_names() == []


def test_a_broadcast_ending_on_a_node_is_finalized_there(pipeline_app, db, redis, live_stream):
    """The replay of a broadcast whose files were synced on node-1 is queued,
    once the end is committed, on replays.node-1 (behind its live segments)."""
    stream, broadcast, _ = live_stream
    pipeline.request_sync(redis, stream.public_id, "node-1")
    streams.end_broadcast(db.session, stream.public_id, "client-1", "nginx-rtmp")
    db.session.commit()
    assert _queued(redis, "replays.node-1") == [(pipeline.FINALIZE_JOB, [broadcast.id])]
    assert _queued(redis, "replays") == []


def test_a_watcher_with_a_bad_node_id_does_not_start(pipeline_app, monkeypatch):
    """STUDIO_NODE_ID that is no node id stops the watcher at start."""
    monkeypatch.setitem(pipeline_app.config, "NODE_ID", "node 1")
    with pytest.raises(ValueError, match="not a media node id"):
        Watcher(pipeline_app)


def test_node_workers_command_line_names_the_node():
    """A node's upload workers listen on its queues and nothing else."""
    env = {"REDIS_URL": "redis://127.0.0.1:6379/0", "STUDIO_NODE_ID": "node-2"}
    argv = launch.workers_argv(env, 2)
    assert argv[-2:] == ["segments.node-2", "replays.node-2"]
    assert "uploads" not in argv and "webhooks" not in argv
    assert launch.node_queues({"REDIS_URL": env["REDIS_URL"]}) == jobs.QUEUES
    hook = runner.node_hook_url("http://127.0.0.1:5000/hooks/nginx-rtmp?token=t-1", "node-2")
    assert hook == "http://127.0.0.1:5000/hooks/nginx-rtmp?token=t-1&node=node-2"


def test_srs_on_hls_naming_a_node_queues_the_sync_there(
    pipeline_app, client, redis, live_stream, monkeypatch
):
    """SRS on node-1 reports a segment (its hook URL says `node=node-1`):
    the sync waits in segments.node-1 for node-1's workers, not in `uploads`."""
    stream, _, _ = live_stream
    nodes = [{"id": "node-1", "api_url": "http://127.0.0.1:9", "ingest_host": "", "capacity": 0}]
    monkeypatch.setitem(pipeline_app.config, "MEDIA_NODES", nodes)
    body = load_fixture("on_hls.json")
    body.update(stream=stream.public_id, url=f"live/{stream.public_id}-0.ts")
    token = pipeline_app.config["HOOK_TOKEN"]

    reply = client.post(f"/hooks/srs?token={token}&node=node-1", json=body)
    assert reply.status_code == 200 and reply.get_json() == {"code": 0}
    assert _all_queued(redis) == {"segments.node-1": [(pipeline.SYNC_JOB, [stream.public_id])]}


def _ended_broadcast(db, make_stream, seconds_ago: int):
    """A stream whose broadcast (with one segment in the bucket, no replay)
    ended `seconds_ago`."""
    stream = make_stream()
    attempt = streams.PublishAttempt(
        stream_name=stream.public_id,
        secret=stream.stream_key,
        client_id="c1",
        protocol="rtmp",
        server_id="nginx-rtmp",
    )
    broadcast = streams.start_broadcast(db.session, attempt)
    streams.end_broadcast(db.session, stream.public_id, "c1", "nginx-rtmp")
    broadcast.ended_at = utcnow() - timedelta(seconds=seconds_ago)
    db.session.add(Segment(broadcast_id=broadcast.id, sequence=0, duration=2.0, object_name="x"))
    db.session.commit()
    return stream, broadcast


def test_the_replay_sweep_finalizes_on_the_node_then_on_the_shared_workers(
    pipeline_app, db, redis, make_stream
):
    """The watcher's sweep queues a missing replay on the replays queue of
    the node holding the stream's files; one still missing ten minutes after
    the end (the node is gone) goes to the shared workers, who write it from
    what the bucket has."""
    recent_stream, recent = _ended_broadcast(db, make_stream, 120)
    old_stream, orphaned = _ended_broadcast(db, make_stream, 1200)
    for stream in (recent_stream, old_stream):
        pipeline.request_sync(redis, stream.public_id, "node-2")
    for name in ("replays", "segments.node-2"):
        pipeline.media_queue(redis, name).empty()

    Watcher(pipeline_app).sweep_replays()
    on_node = _queued(redis, "replays.node-2")
    shared = _queued(redis, "replays")
    assert (pipeline.FINALIZE_JOB, [recent.id]) in on_node
    assert (pipeline.FINALIZE_JOB, [recent.id]) not in shared
    assert (pipeline.FINALIZE_JOB, [orphaned.id]) in shared
    assert (pipeline.FINALIZE_JOB, [orphaned.id]) not in on_node


@pytest.mark.parametrize(
    ("argv", "env_node", "message"),
    [
        (["--node", "node 1"], "", "not a media node id"),
        (["--node", "node-1"], "node-2", "differs from STUDIO_NODE_ID"),
    ],
)
def test_a_watcher_named_a_bad_node_on_its_command_line_does_not_start(argv, env_node, message):
    """`python -m workers.watcher --node ID` names the node it serves (an
    operator tells the nodes' watchers apart by it); a malformed id, or one
    that contradicts STUDIO_NODE_ID, stops it before it touches anything."""
    env = {**os.environ, "STUDIO_NODE_ID": env_node}
    done = subprocess.run(
        [sys.executable, "-m", "workers.watcher", *argv],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert message in done.stderr
