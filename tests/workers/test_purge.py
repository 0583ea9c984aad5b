"""Purge: deleting a stream removes its objects from the bucket and its local
HLS files, and nothing of any other stream."""

from __future__ import annotations

import os
import time
import urllib.parse

import pytest
import requests

from studio.chat import limits as chat_limits
from studio.media import pipeline
from studio.redis_client import get_redis
from studio.storage import gcs, layout
from studio.streams import service as streams
from tests.workers.burst import run_jobs
from workers import jobs
from workers.context import job_app
from workers.pipeline import purge


def _object_names(fake_gcs, bucket, prefix: str = "live/") -> list[str]:
    query = urllib.parse.urlencode({"prefix": prefix})
    url = f"{fake_gcs.url}/storage/v1/b/{bucket.name}/o?{query}"
    reply = requests.get(url, timeout=10)
    assert reply.status_code == 200, reply.text
    return sorted(item["name"] for item in reply.json().get("items", []))


def _fill(bucket, public_id: str) -> list[str]:
    """A live playlist, two broadcasts' segments and a replay, as the pipeline writes them."""
    names = [layout.live_playlist(public_id)]
    names += [layout.segment(public_id, broadcast, n) for broadcast in (7, 8) for n in (1, 2)]
    names.append(layout.replay_playlist(public_id, 7))
    for name in names:
        bucket.put(name, b"data of " + name.encode())
    return sorted(names)


def _local(hls_root, name: str, age: float = 60.0):
    path = hls_root / "live" / name
    path.write_bytes(b"ts")
    stamp = time.time() - age
    os.utime(path, (stamp, stamp))
    return path


@pytest.fixture()
def two_streams(pipeline_app, db, make_stream, bucket, tmp_path):
    """A stream to delete and a neighbour, each with objects and local files.
    An object under the doomed id plus a letter stands for a neighbour whose
    id extends it: a prefix without its trailing slash would catch it."""
    doomed, other = make_stream(), make_stream()
    hls_root = tmp_path / "hls"
    kept = _fill(bucket, other.public_id)
    lookalike = f"live/{doomed.public_id}x/1/1.ts"
    bucket.put(lookalike, b"not the doomed stream's")
    kept_files = [
        _local(hls_root, f"{other.public_id}-3.ts"),
        _local(hls_root, f"{other.public_id}.m3u8"),
    ]
    doomed_files = [
        _local(hls_root, f"{doomed.public_id}-3.ts"),
        _local(hls_root, f"{doomed.public_id}-4.ts.tmp"),
        _local(hls_root, f"{doomed.public_id}.m3u8"),
    ]
    doomed_objects = _fill(bucket, doomed.public_id)
    return doomed, doomed_objects, doomed_files, sorted([*kept, lookalike]), kept_files


def test_purge_deletes_only_the_deleted_streams_media_and_is_idempotent(
    pipeline_app, db, fake_gcs, bucket, two_streams
):
    """After the stream's row is gone, the job deletes every object under
    live/{id}/ and its local playlist and segments; another stream's objects
    and files (even one whose id starts with the same characters) stay. A
    second run deletes nothing and succeeds."""
    doomed, doomed_objects, doomed_files, kept_objects, kept_files = two_streams
    public_id = doomed.public_id
    connection = get_redis(pipeline_app)
    connection.set(chat_limits.slow_mode_key(public_id, "a123"), 1, ex=600)
    connection.set(chat_limits.slow_mode_key(public_id + "x", "a123"), 1, ex=600)
    connection.hset(pipeline.Keys.recorded(public_id), "3", "[1,2.0,false,null]")
    db.session.delete(doomed)
    db.session.commit()

    assert jobs.purge_stream(public_id) == {
        "status": "purged",
        "objects": len(doomed_objects),
        "local_files": 3,
    }
    assert _object_names(fake_gcs, bucket) == kept_objects
    assert [p.exists() for p in doomed_files] == [False, False, False]
    assert [p.exists() for p in kept_files] == [True, True]
    # The chat's slow-mode waits of that stream only.
    assert not connection.exists(chat_limits.slow_mode_key(public_id, "a123"))
    assert connection.exists(chat_limits.slow_mode_key(public_id + "x", "a123"))
    # The sync's notes of its window.
    assert not connection.exists(pipeline.Keys.recorded(public_id))

    again = jobs.purge_stream(public_id)
    assert again == {"status": "purged", "objects": 0, "local_files": 0}
    assert _object_names(fake_gcs, bucket) == kept_objects


def test_purge_refuses_an_existing_stream_and_a_bad_name(
    pipeline_app, db, fake_gcs, bucket, two_streams
):
    """A purge queued for a stream that still exists deletes nothing; a name
    that cannot be a stream id is refused before anything is touched."""
    doomed, doomed_objects, doomed_files, kept_objects, _ = two_streams

    assert jobs.purge_stream(doomed.public_id) == {"status": "exists"}
    with pytest.raises(ValueError):
        jobs.purge_stream("../live")
    assert _object_names(fake_gcs, bucket) == sorted([*doomed_objects, *kept_objects])
    assert all(p.exists() for p in doomed_files)


def test_files_still_being_written_are_left_for_a_retry(
    pipeline_app, db, fake_gcs, bucket, two_streams, tmp_path
):
    """A local segment written a moment ago (the engine may still hold it)
    is kept and the job fails so RQ retries it; everything else is deleted
    already, and the retry, once the file is quiet, removes it."""
    doomed, _, _, kept_objects, _ = two_streams
    public_id = doomed.public_id
    fresh = _local(tmp_path / "hls", f"{public_id}-9.ts", age=0)
    db.session.delete(doomed)
    db.session.commit()

    with pytest.raises(purge.StreamFilesBusy):
        jobs.purge_stream(public_id)
    assert fresh.exists()
    assert _object_names(fake_gcs, bucket) == kept_objects

    stamp = time.time() - purge.QUIET_SECONDS - 1
    os.utime(fresh, (stamp, stamp))
    assert jobs.purge_stream(public_id)["local_files"] == 1
    assert not fresh.exists()


def test_deleting_through_the_api_queues_the_purge_a_worker_runs(
    pipeline_app, client, db, redis, fake_gcs, bucket, make_token, two_streams
):
    """DELETE /api/v1/streams/{id} queues one purge job after the commit (on
    the replays queue); an RQ worker runs it and the stream's objects and
    local files are gone, the other stream's stay."""
    doomed, _, doomed_files, kept_objects, kept_files = two_streams
    token = make_token(doomed.owner)

    reply = client.delete(
        f"/api/v1/streams/{doomed.public_id}", headers={"Authorization": f"Bearer {token}"}
    )

    assert reply.status_code == 204
    queue = pipeline.media_queue(redis, pipeline.REPLAY_QUEUE_NAME)
    assert [(job.func_name, job.args) for job in queue.get_jobs()] == [
        (pipeline.PURGE_JOB, [doomed.public_id])
    ]
    run_jobs(redis)
    assert _object_names(fake_gcs, bucket) == kept_objects
    assert not any(p.exists() for p in doomed_files)
    assert all(p.exists() for p in kept_files)


def test_delete_prefix_refuses_a_prefix_that_is_not_a_folder(pipeline_app):
    """delete_prefix never runs with an empty or slash-less prefix (it would
    match every object, or other streams' objects)."""
    storage = gcs.get_storage(pipeline_app.config)
    for prefix in ("", "live", "live/abc", "/live/abc/"):
        with pytest.raises(ValueError):
            storage.delete_prefix(prefix)


def test_rolled_back_deletion_queues_nothing(pipeline_app, db, redis, make_stream):
    """The purge is queued only once the deletion commits."""
    stream = make_stream()
    with job_app():
        streams.delete_stream(db.session, stream)
        db.session.rollback()
    assert pipeline.media_queue(redis, pipeline.REPLAY_QUEUE_NAME).get_jobs() == []


def test_deleting_through_the_page_queues_the_purge_too(
    pipeline_app, client, db, redis, fake_gcs, bucket, auth, two_streams
):
    """The creator page's delete form goes through the same service: after
    the redirect a worker purges the stream's objects, the other's stay."""
    doomed, _, _, kept_objects, _ = two_streams
    auth.login(doomed.owner.email)
    token = auth.form_token(f"/streams/{doomed.public_id}")

    reply = client.post(f"/streams/{doomed.public_id}/delete", data={"csrf_token": token})

    assert reply.status_code == 302
    run_jobs(redis)
    assert _object_names(fake_gcs, bucket) == kept_objects
