"""A stream made private or deleted: with STUDIO_CDN_INVALIDATE on, the
pipeline asks Cloud CDN (the Compute API, here its stand-in) to drop the
copies it cached while the stream was public."""

from __future__ import annotations

import pytest
from rq.job import Job, JobStatus
from rq.serializers import JSONSerializer

from studio.media import pipeline
from studio.storage import layout
from studio.streams import access
from tests.storage import compute_standin
from tests.workers.burst import run_jobs
from workers import jobs


@pytest.fixture()
def compute(pipeline_app, tmp_path, monkeypatch):
    """The stand-in, the workers' credentials pointing at it, invalidation on."""
    standin, server = compute_standin.start(tmp_path)
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(standin.credentials_file))
    monkeypatch.setitem(pipeline_app.config, "COMPUTE_API_URL", standin.url)
    monkeypatch.setitem(pipeline_app.config, "CDN_INVALIDATE", True)
    monkeypatch.setitem(pipeline_app.config, "CDN_URL_MAP", "edge-map")
    monkeypatch.setitem(pipeline_app.config, "GCP_PROJECT", "")
    yield standin
    server.shutdown()
    server.server_close()


def sync_one_segment(live_stream) -> str:
    stream, _, hls = live_stream
    hls.add_segment(1)
    hls.write_playlist([1])
    assert jobs.sync_stream(stream.public_id)["uploaded"] == 1
    return stream.public_id


def test_going_private_invalidates_the_public_folder(db, redis, compute, live_stream):
    """The move job queues the invalidation of /live/{id}/*; it reaches the
    URL map of the project the credentials name, with the token they got."""
    public_id = sync_one_segment(live_stream)
    access.set_visibility(db.session, live_stream[0], "private")
    db.session.commit()
    run_jobs(redis)

    [asked] = compute.invalidations
    assert (asked.project, asked.url_map) == (compute_standin.PROJECT, "edge-map")
    assert asked.path == f"/live/{public_id}/*"
    assert asked.authorization == f"Bearer {compute.tokens[-1]}"


def test_deleting_invalidates_both_folders(pipeline_app, db, redis, compute, live_stream):
    """The purge of a deleted stream ends with the invalidation of its
    public and private folders, in the project set by STUDIO_GCP_PROJECT."""
    public_id = live_stream[0].public_id
    pipeline_app.config["GCP_PROJECT"] = "studio-prod"
    db.session.delete(live_stream[0])
    db.session.commit()
    pipeline.request_purge(redis, public_id)
    run_jobs(redis)

    assert sorted(i.path for i in compute.invalidations) == [
        f"/live/{public_id}/*",
        f"/private/{public_id}/*",
    ]
    assert {i.project for i in compute.invalidations} == {"studio-prod"}


def test_with_invalidation_off_nothing_is_asked(pipeline_app, db, redis, compute, live_stream):
    pipeline_app.config["CDN_INVALIDATE"] = False
    sync_one_segment(live_stream)
    access.set_visibility(db.session, live_stream[0], "private")
    db.session.commit()
    run_jobs(redis)

    assert compute.invalidations == []
    queue = pipeline.media_queue(redis, pipeline.REPLAY_QUEUE_NAME)
    assert queue.count == 0


def test_a_refused_invalidation_is_retried_and_the_move_stands(
    db, redis, bucket, compute, live_stream
):
    """Google refuses (rate limit): the job fails and is scheduled again;
    the stream's objects have moved all the same."""
    compute.refuse_with = 429
    public_id = sync_one_segment(live_stream)
    access.set_visibility(db.session, live_stream[0], "private")
    db.session.commit()
    run_jobs(redis)

    assert len(compute.invalidations) == 1
    queue = pipeline.media_queue(redis, jobs.INVALIDATE_CDN.queue)
    [job_id] = queue.scheduled_job_registry.get_job_ids()
    job = Job.fetch(job_id, connection=redis, serializer=JSONSerializer)
    assert job.get_status() == JobStatus.SCHEDULED
    broadcast = live_stream[1]
    assert bucket.get(layout.segment(public_id, broadcast.id, 1, private=True))[0] == 200
    assert bucket.get(layout.segment(public_id, broadcast.id, 1))[0] == 404


def test_the_job_refuses_bad_arguments():
    with pytest.raises(ValueError):
        jobs.invalidate_cdn("../live")
    with pytest.raises(ValueError):
        jobs.invalidate_cdn("abc", "yes")
