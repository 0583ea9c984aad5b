"""What starts a sync: SRS on_hls, the directory watcher's sweep, the end of
a broadcast; each trigger is coalesced per stream and run by a real RQ worker."""

from __future__ import annotations

import os
import time

import pytest
from sqlalchemy import select

from studio.media import engines, pipeline
from studio.models import Segment
from studio.storage import layout
from studio.streams import service as streams
from tests.conftest import load_fixture
from tests.workers.burst import run_jobs
from workers.watcher import Watcher


def _queued(redis, name: str = pipeline.QUEUE_NAME) -> list[tuple[str, list]]:
    queue = pipeline.media_queue(redis, name)
    return [(job.func_name, job.args) for job in queue.get_jobs()]


def _on_hls(stream: str) -> dict:
    body = load_fixture("on_hls.json")
    body.update(stream=stream, url=f"live/{stream}-0.ts", m3u8_url=f"live/{stream}.m3u8")
    return body


def test_on_hls_enqueues_one_sync_that_a_worker_runs(
    pipeline_app, client, redis, bucket, live_stream
):
    """SRS on_hls for a stream queues one sync job (repeats are coalesced);
    an RQ SimpleWorker runs it and the segment lands in the bucket."""
    stream, broadcast, hls = live_stream
    hls.add_segment(0)
    hls.write_playlist([0])
    token = pipeline_app.config["HOOK_TOKEN"]

    for _ in range(3):
        reply = client.post(f"/hooks/srs?token={token}", json=_on_hls(stream.public_id))
        assert reply.status_code == 200 and reply.get_json() == {"code": 0}

    assert _queued(redis) == [(pipeline.SYNC_JOB, [stream.public_id])]
    run_jobs(redis)
    assert bucket.get(layout.segment(stream.public_id, broadcast.id, 0))[0] == 200
    assert hls.local_names() == []


def test_on_hls_for_a_bad_stream_name_queues_nothing(pipeline_app, client, redis, db):
    """A stream name that cannot be a file name is accepted (SRS ignores the
    answer) but queues no work."""
    token = pipeline_app.config["HOOK_TOKEN"]
    reply = client.post(f"/hooks/srs?token={token}", json=_on_hls("../../etc"))
    assert reply.status_code == 200
    assert _queued(redis) == []


def test_sweep_triggers_streams_with_files_left_behind(pipeline_app, redis, live_stream):
    """The watcher's sweep queues a sync for a stream whose segments wait on
    disk (a lost trigger), and nothing for a stream already in sync."""
    stream, _, hls = live_stream
    old = time.time() - 60
    hls.add_segment(1, mtime=old)
    hls.write_playlist([1])
    watcher = Watcher(pipeline_app)

    assert watcher.sweep() == 1
    assert _queued(redis) == [(pipeline.SYNC_JOB, [stream.public_id])]
    run_jobs(redis)
    assert hls.local_names() == []
    assert watcher.sweep() == 0


def test_the_sweep_repairs_what_a_killed_worker_left_and_the_stream_syncs(
    pipeline_app, redis, live_stream
):
    """A worker killed between taking a sync job and starting it leaves the
    node's "queued" flag with no job; one killed while draining leaves the
    drainer count too high. Either made every trigger (the sweep's too)
    enqueue nothing until it expired, while segments waited. The sweep sets
    both right, and its trigger queues the sync."""
    stream, _, hls = live_stream
    stale = pipeline.QUEUED_TTL - pipeline.QUEUED_STALE
    redis.set(pipeline.Keys.queued("default"), 1, ex=stale)
    redis.set(pipeline.Keys.draining("default"), 3, ex=20)
    hls.add_segment(1, mtime=time.time() - 60)
    hls.write_playlist([1])

    assert pipeline.request_sync(redis, stream.public_id) is False  # stalled
    assert _queued(redis) == []
    assert Watcher(pipeline_app).sweep() == 1
    assert _queued(redis) == [(pipeline.SYNC_JOB, [stream.public_id])]
    assert int(redis.get(pipeline.Keys.draining("default"))) == 0
    run_jobs(redis)
    assert hls.local_names() == []


def test_a_fresh_queued_flag_is_a_job_being_taken_not_a_lost_one(pipeline_app, redis):
    """A worker takes a job off the queue some milliseconds before the job
    drops the node's queued flag: a flag younger than QUEUED_STALE is left
    alone."""
    redis.set(pipeline.Keys.queued("default"), 1, ex=pipeline.QUEUED_TTL)
    assert pipeline.repair_coalescing(redis) == []
    assert redis.exists(pipeline.Keys.queued("default"))


def test_watcher_turns_a_playlist_write_into_a_sync(pipeline_app, redis, live_stream):
    """An engine rewriting `<stream>.m3u8` (inotify) queues a sync of that stream."""
    stream, _, hls = live_stream
    watcher = Watcher(pipeline_app)
    hls.add_segment(1)
    hls.write_playlist([1])

    events = watcher.inotify.read(timeout=2000)
    names = {event.name for event in events}
    assert f"{stream.public_id}.m3u8" in names
    watcher.trigger(stream.public_id)
    assert _queued(redis) == [(pipeline.SYNC_JOB, [stream.public_id])]


def test_with_an_engine_that_announces_segments_the_watcher_only_sweeps(
    pipeline_app, redis, live_stream, monkeypatch
):
    """Under SRS each segment's on_hls queues its sync, so the watcher does
    not also react to the playlist write; its sweep still catches what a
    lost callback left behind."""
    srs = engines.build({"MEDIA_ENGINE": "srs", "SRS_API_URL": "http://127.0.0.1:9"})
    monkeypatch.setitem(pipeline_app.extensions, engines.EXTENSION, srs)
    stream, _, hls = live_stream
    watcher = Watcher(pipeline_app)
    hls.add_segment(1, mtime=time.time() - 60)
    hls.write_playlist([1])

    assert not watcher.on_write
    assert watcher.inotify.read(timeout=500) == []
    assert watcher.sweep() == 1
    assert _queued(redis) == [(pipeline.SYNC_JOB, [stream.public_id])]


def test_end_of_broadcast_queues_its_replay(pipeline_app, db, redis, live_stream):
    """Ending a broadcast queues its finalize job once the end is committed,
    on the replays queue (behind live segments)."""
    stream, broadcast, _ = live_stream
    replays = pipeline.REPLAY_QUEUE_NAME
    assert _queued(redis, replays) == []

    streams.end_broadcast(db.session, stream.public_id, "client-1", "nginx-rtmp")
    assert _queued(redis, replays) == []  # not before the commit
    db.session.commit()

    assert _queued(redis, replays) == [(pipeline.FINALIZE_JOB, [broadcast.id])]
    assert _queued(redis) == []


def test_redis_down_leaves_files_waiting_and_the_sweep_catches_up(
    pipeline_app, redis, live_stream, monkeypatch
):
    """With Redis unreachable a trigger or sweep queues nothing and raises
    nothing (the files wait on disk); once Redis is back the next sweep
    queues the stream and a worker uploads everything."""
    stream, _, hls = live_stream
    hls.add_segment(1, mtime=time.time() - 60)
    hls.add_segment(2, mtime=time.time() - 58)
    hls.write_playlist([1, 2])
    reachable = pipeline_app.config["REDIS_URL"]
    monkeypatch.setitem(pipeline_app.config, "REDIS_URL", "redis://127.0.0.1:9/0")
    pipeline_app.extensions.pop("studio_redis", None)
    watcher = Watcher(pipeline_app)

    watcher.trigger(stream.public_id)
    assert watcher.sweep() == 0
    assert len(hls.local_names()) == 2

    monkeypatch.setitem(pipeline_app.config, "REDIS_URL", reachable)
    pipeline_app.extensions.pop("studio_redis", None)
    assert watcher.sweep() == 1
    run_jobs(redis)
    assert hls.local_names() == []


def test_sweep_leaves_a_stale_playlist_of_an_unknown_stream_alone(
    pipeline_app, redis, db, tmp_path
):
    """A playlist left by a deleted stream is looked at once, not every sweep."""
    live = tmp_path / "hls" / "live"
    playlist = live / "deletedstream.m3u8"
    playlist.write_text("#EXTM3U\n")
    old = time.time() - 60
    os.utime(playlist, (old, old))
    watcher = Watcher(pipeline_app)

    assert watcher.sweep() == 1
    run_jobs(redis)
    assert watcher.sweep() == 0


def test_on_hls_facts_are_used_as_srs_reported_them(
    pipeline_app, client, redis, db, bucket, live_stream
):
    """The length SRS reports in on_hls is the segment's recorded length (and
    its live playlist entry), not one recomputed from the playlist or file."""
    stream, broadcast, hls = live_stream
    hls.add_segment(0)
    hls.write_playlist([0], durations={0: 2.0})
    token = pipeline_app.config["HOOK_TOKEN"]
    body = _on_hls(stream.public_id) | {
        "seq_no": 0,
        "duration": 2.37,
        "file": f"/var/lib/srs/hls/live/{stream.public_id}-0.ts",
    }

    assert client.post(f"/hooks/srs?token={token}", json=body).get_json() == {"code": 0}
    run_jobs(redis)

    segment = db.session.scalars(select(Segment).where(Segment.broadcast_id == broadcast.id)).one()
    assert (segment.sequence, segment.duration) == (0, 2.37)
    status, _, playlist = bucket.get(layout.live_playlist(stream.public_id))
    assert status == 200 and b"#EXTINF:2.370," in playlist
    assert redis.hgetall(pipeline.Keys.reported(stream.public_id)) == {}  # recorded, forgotten


def test_an_on_hls_for_another_file_name_does_not_set_the_length(
    pipeline_app, client, redis, db, bucket, live_stream
):
    """A reported length is used only for the file SRS named: a segment whose
    file does not match keeps the playlist's length."""
    stream, broadcast, hls = live_stream
    hls.add_segment(0)
    hls.write_playlist([0], durations={0: 2.0})
    token = pipeline_app.config["HOOK_TOKEN"]
    body = _on_hls(stream.public_id) | {"seq_no": 0, "duration": 2.37, "file": "/x/other-0.ts"}

    assert client.post(f"/hooks/srs?token={token}", json=body).get_json() == {"code": 0}
    run_jobs(redis)

    segment = db.session.scalars(select(Segment).where(Segment.broadcast_id == broadcast.id)).one()
    assert segment.duration == 2.0


def test_on_hls_while_the_streams_sync_runs_queues_nothing(
    pipeline_app, client, redis, bucket, live_stream
):
    """While a sync job holds the stream's lock, on_hls only marks the stream
    dirty (no job queued behind it); once the lock is free, the next one
    queues a job again."""
    stream, broadcast, hls = live_stream
    hls.add_segment(0)
    hls.write_playlist([0])
    token = pipeline_app.config["HOOK_TOKEN"]
    running = redis.lock(pipeline.Keys.lock(stream.public_id), timeout=30)
    assert running.acquire(blocking=False)

    reply = client.post(f"/hooks/srs?token={token}", json=_on_hls(stream.public_id))

    assert reply.status_code == 200 and reply.get_json() == {"code": 0}
    assert _queued(redis) == []
    assert redis.get(pipeline.Keys.dirty(stream.public_id)) == b"1"
    assert redis.get(pipeline.Keys.queued(pipeline.DEFAULT_NODE)) is None
    assert redis.zscore(pipeline.Keys.dirty_streams("default"), stream.public_id) is None
    running.release()
    client.post(f"/hooks/srs?token={token}", json=_on_hls(stream.public_id))
    assert _queued(redis) == [(pipeline.SYNC_JOB, [stream.public_id])]


def test_triggers_of_several_streams_share_one_job(
    pipeline_app, client, redis, bucket, make_live_stream
):
    """on_hls of three streams queues one sync job while it waits; one run
    of it uploads every stream's segment and leaves no dirty stream."""
    token = pipeline_app.config["HOOK_TOKEN"]
    live = [make_live_stream() for _ in range(3)]
    for stream, _, hls in live:
        hls.add_segment(0)
        hls.write_playlist([0])
        reply = client.post(f"/hooks/srs?token={token}", json=_on_hls(stream.public_id))
        assert reply.status_code == 200

    assert _queued(redis) == [(pipeline.SYNC_JOB, [live[0][0].public_id])]
    run_jobs(redis)
    for stream, broadcast, hls in live:
        assert bucket.get(layout.segment(stream.public_id, broadcast.id, 0))[0] == 200
        assert hls.local_names() == []
    assert redis.zcard(pipeline.Keys.dirty_streams(pipeline.DEFAULT_NODE)) == 0
    assert redis.get(pipeline.Keys.draining(pipeline.DEFAULT_NODE)) == b"0"


def test_a_trigger_while_a_job_drains_is_taken_by_it(pipeline_app, client, redis, live_stream):
    """While a sync job drains the node's dirty streams, on_hls of another
    stream queues no job: the drainer takes it next. Once the drainer has
    found the set empty, the next on_hls queues a job again."""
    stream, _, hls = live_stream
    token = pipeline_app.config["HOOK_TOKEN"]
    pipeline.start_draining(redis, pipeline.DEFAULT_NODE, "otherstream")

    client.post(f"/hooks/srs?token={token}", json=_on_hls(stream.public_id))

    assert _queued(redis) == []
    assert pipeline.next_dirty_streams(redis, pipeline.DEFAULT_NODE) == [stream.public_id]
    assert pipeline.next_dirty_streams(redis, pipeline.DEFAULT_NODE) == []
    client.post(f"/hooks/srs?token={token}", json=_on_hls(stream.public_id))
    assert _queued(redis) == [(pipeline.SYNC_JOB, [stream.public_id])]


def test_a_drainer_counts_for_a_group_of_streams(redis, monkeypatch):
    """A running drainer takes DRAIN_GROUP streams at a time: triggers queue
    no job until the set holds more than the drainers can take, and the
    drainer then takes the oldest streams, a group at a time."""
    monkeypatch.setattr(pipeline, "DRAIN_GROUP", 2)
    node = pipeline.DEFAULT_NODE
    pipeline.start_draining(redis, node, "grp_running")

    assert not pipeline.request_sync(redis, "grp_a")
    assert not pipeline.request_sync(redis, "grp_b")
    assert _queued(redis) == []
    assert pipeline.request_sync(redis, "grp_c")
    assert _queued(redis) == [(pipeline.SYNC_JOB, ["grp_c"])]

    assert pipeline.next_dirty_streams(redis, node, 2) == ["grp_a", "grp_b"]
    assert pipeline.next_dirty_streams(redis, node, 2) == ["grp_c"]
    assert pipeline.next_dirty_streams(redis, node, 2) == []
    assert redis.get(pipeline.Keys.draining(node)) == b"0"


def test_a_waiting_drainer_lets_others_join_its_first_stream(redis):
    """A drainer that waited for a stream keeps it until it has waited the
    gather time, and takes with it the streams that came meanwhile."""
    import threading

    node = pipeline.DEFAULT_NODE
    pipeline.start_draining(redis, node, "grp_running")
    pipeline.request_sync(redis, "grp_first")
    later = threading.Timer(0.2, pipeline.request_sync, (redis, "grp_later"))
    later.start()
    try:
        taken = pipeline.wait_dirty_streams(redis, node, 1.0, count=4, gather=2.0)
    finally:
        later.join()

    assert taken == ["grp_first", "grp_later"]


def test_a_drainer_out_of_time_queues_the_next_job(
    pipeline_app, redis, make_live_stream, monkeypatch
):
    """A sync job stops draining after DRAIN_SECONDS and queues one job for
    the streams left, which uploads them."""
    from workers.pipeline import drainer

    first, second = make_live_stream(), make_live_stream()
    for stream, _, hls in (first, second):
        hls.add_segment(1, mtime=time.time() - 60)
        hls.write_playlist([1])
        pipeline.request_sync(redis, stream.public_id)
    monkeypatch.setattr(pipeline, "DRAIN_SECONDS", 0.0)
    drainer.sync_requested(pipeline_app, first[0].public_id, pipeline.DEFAULT_NODE)

    assert first[2].local_names() == []
    assert second[2].local_names() != []
    queued = _queued(redis)
    assert len(queued) == 2 and queued[-1] == (pipeline.SYNC_JOB, [second[0].public_id])
    run_jobs(redis)
    assert second[2].local_names() == []


def test_a_failed_pass_puts_its_stream_back(pipeline_app, redis, make_live_stream, monkeypatch):
    """A pass of a stream taken from the node's set that fails puts the stream
    back in the set, dirty, and the job fails (RQ retries it); the job
    no longer counts as a drainer."""
    from workers.pipeline import drainer, sync

    first, second = make_live_stream(), make_live_stream()
    for stream, _, hls in (first, second):
        hls.add_segment(1, mtime=time.time() - 60)
        hls.write_playlist([1])
        pipeline.request_sync(redis, stream.public_id)
    real = sync.sync_group

    def failing(app, held):
        if second[0].public_id in held:
            raise RuntimeError("database gone")
        return real(app, held)

    monkeypatch.setattr(sync, "sync_group", failing)
    with pytest.raises(RuntimeError):
        drainer.sync_requested(pipeline_app, first[0].public_id, pipeline.DEFAULT_NODE)

    node = pipeline.DEFAULT_NODE
    assert redis.zrange(pipeline.Keys.dirty_streams(node), 0, -1) == [second[0].public_id.encode()]
    assert redis.get(pipeline.Keys.dirty(second[0].public_id)) == b"1"
    assert redis.get(pipeline.Keys.draining(node)) == b"0"
    assert first[2].local_names() == []


def test_only_a_busy_node_gathers_streams():
    """A drainer lets its first stream wait for others only when, at the rate
    streams came so far, another is due within the gather time: a node with
    a stream or two keeps its lowest latency."""
    from workers.pipeline import drainer

    gather = pipeline.DRAIN_GATHER_FRAGMENTS * 2.0
    assert drainer._gather(1, 0.01, 2.0) == 0.0  # the job's own stream, just now
    assert drainer._gather(2, 2.0, 2.0) == 0.0  # two streams at 2 s fragments
    assert drainer._gather(50, 1.0, 2.0) == gather  # a hundred streams at 2 s fragments
    assert drainer._gather(50, 1.0, 1.0) == gather / 2  # fifty at 1 s: half as long


def test_a_stream_asked_for_during_its_pass_waits_behind_the_others(
    pipeline_app, redis, make_live_stream, monkeypatch
):
    """A stream asked for again during every pass of its drainer does not
    keep it: it goes back behind the streams already waiting, which the
    drainer's next group takes."""
    from workers.pipeline import drainer, sync

    busy, other = make_live_stream(), make_live_stream()
    for stream, _, hls in (busy, other):
        hls.add_segment(1, mtime=time.time() - 60)
        hls.write_playlist([1])
        pipeline.request_sync(redis, stream.public_id)
    busy_id, other_id = busy[0].public_id, other[0].public_id
    groups: list[set[str]] = []
    real = sync.sync_group

    def asked_again(app, held):
        groups.append(set(held))
        results = real(app, held)
        if busy_id in held and len(groups) < 5:
            # A new segment and its trigger, late in the pass.
            number = len(groups) + 1
            busy[2].add_segment(number, mtime=time.time() - 60 + number)
            busy[2].write_playlist(list(range(1, number + 1)))
            redis.set(pipeline.Keys.dirty(busy_id), 1)
        return results

    monkeypatch.setattr(sync, "sync_group", asked_again)
    drainer.sync_requested(pipeline_app, busy_id, pipeline.DEFAULT_NODE)

    assert groups[0] == {busy_id}
    assert other_id in groups[1]
    assert other[2].local_names() == [] and busy[2].local_names() == []
