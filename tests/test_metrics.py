"""/metrics: request latency by endpoint, callbacks by event and outcome,
broadcasts, and the gauges measured at scrape time."""

from __future__ import annotations

import json
import os

from rq import Queue
from sqlalchemy import text

from tests.conftest import load_fixture
from tests.metrics_helpers import samples, value

HOOK = "/hooks/srs?token=test-hook-token"


def scrape(client) -> str:
    reply = client.get("/metrics")
    assert reply.status_code == 200
    assert reply.mimetype == "text/plain"
    return reply.get_data(as_text=True)


def publishable(db, make_stream, name="sk_test123", key="abc"):
    stream = make_stream()
    stream.public_id, stream.stream_key = name, key
    db.session.commit()
    return stream


def post_hook(client, body, url=HOOK):
    return client.post(url, data=json.dumps(body), content_type="application/json")


def test_callbacks_counted_by_event_and_outcome(client, db, make_stream):
    """Each callback is counted once under its event and what the studio answered."""
    publishable(db, make_stream)
    before = scrape(client)
    publish = load_fixture("on_publish.json")
    assert post_hook(client, publish).get_json()["code"] == 0
    assert post_hook(client, {**publish, "param": "?secret=wrong"}).get_json()["code"] != 0
    assert post_hook(client, load_fixture("on_unpublish.json")).status_code == 200
    assert post_hook(client, publish, url="/hooks/srs?token=nope").status_code == 403
    assert post_hook(client, {"action": "on_publish"}).status_code == 400
    after = scrape(client)

    def delta(event, outcome):
        labels = {"engine": "srs", "event": event, "outcome": outcome}
        return value(after, "studio_callbacks_total", **labels) - value(
            before, "studio_callbacks_total", **labels
        )

    assert delta("on_publish", "accepted") == 1
    assert delta("on_publish", "refused") == 1
    assert delta("on_unpublish", "accepted") == 1
    assert delta("on_publish", "unauthorized") == 1
    assert delta("on_publish", "invalid") == 1


def test_nginx_rtmp_callbacks_counted_by_what_the_view_decided(client, db, make_stream):
    """nginx-rtmp refuses with a 403 like a bad token does: the counter still
    tells a refused publish from an unauthorized call, and a path that names
    no engine's callbacks is a 404, not a callback."""
    stream = publishable(db, make_stream)
    form = {"call": "publish", "app": "live", "name": stream.public_id, "clientid": "7"}
    url = "/hooks/nginx-rtmp?token="
    before = scrape(client)
    assert client.post(url + "test-hook-token", data={**form, "secret": "abc"}).status_code == 200
    assert client.post(url + "test-hook-token", data={**form, "secret": "no"}).status_code == 403
    assert client.post(url + "nope", data={**form, "secret": "abc"}).status_code == 403
    assert client.post("/hooks/flv?token=test-hook-token", data=form).status_code == 404
    after = scrape(client)

    def delta(outcome):
        labels = {"engine": "nginx-rtmp", "event": "publish", "outcome": outcome}
        return value(after, "studio_callbacks_total", **labels) - value(
            before, "studio_callbacks_total", **labels
        )

    assert (delta("accepted"), delta("refused"), delta("unauthorized")) == (1, 1, 1)
    assert 'engine="flv"' not in after


def test_broadcasts_started_and_ended_counted_after_commit(client, db, make_stream):
    """A publish/unpublish pair counts one start (by protocol) and one end (by reason)."""
    publishable(db, make_stream)
    before = scrape(client)
    post_hook(client, load_fixture("on_publish.json"))
    post_hook(client, load_fixture("on_publish.json"))  # a repeat is not a new broadcast
    post_hook(client, load_fixture("on_unpublish.json"))
    after = scrape(client)
    started = "studio_broadcasts_started_total"
    ended = "studio_broadcasts_ended_total"
    assert value(after, started, protocol="rtmp") - value(before, started, protocol="rtmp") == 1
    assert value(after, ended, reason="unpublish") - value(before, ended, reason="unpublish") == 1


def test_latency_labelled_by_endpoint_never_by_path(client, db, make_stream):
    """Latency series carry blueprint.view names; unknown paths share one label."""
    client.get("/watch/doesnotexist123")
    client.get("/no/such/page/abc")
    client.get("/healthz")
    text_ = scrape(client)
    endpoints = {
        dict(labels)["endpoint"]
        for (name, labels) in samples(text_)
        if name == "studio_http_request_duration_seconds_count"
    }
    assert "health.healthz" in endpoints
    assert "watch.watch" in endpoints or any(e.startswith("watch.") for e in endpoints)
    assert "unmatched" in endpoints
    assert not any("/" in endpoint for endpoint in endpoints)


def test_live_streams_gauge_reads_the_database(client, db, make_stream):
    """studio_live_streams equals the number of streams live in PostgreSQL."""
    for _ in range(3):
        make_stream()
    db.session.execute(text("UPDATE streams SET status = 'live' WHERE id IN (1, 2)"))
    db.session.commit()
    assert value(scrape(client), "studio_live_streams") == 2


def test_queue_depth_per_rq_queue(client, redis):
    """studio_queue_depth reports the jobs waiting in each RQ queue."""
    queue = Queue("depth-test", connection=redis)
    for n in range(3):
        queue.enqueue("builtins.print", n)
    assert value(scrape(client), "studio_queue_depth", queue="depth-test") == 3


def test_hls_backlog_counts_segment_files(app, client, tmp_path):
    """studio_hls_backlog_files counts .ts files waiting in the HLS directory."""
    (tmp_path / "live").mkdir()
    for n in range(4):
        (tmp_path / "live" / f"s-{n}.ts").write_bytes(b"x")
    (tmp_path / "live" / "s.m3u8").write_text("#EXTM3U\n")
    old = tmp_path / "live" / "s-0.ts"
    os.utime(old, (old.stat().st_atime, old.stat().st_mtime - 120))
    saved = app.config["HLS_DIR"]
    app.config["HLS_DIR"] = str(tmp_path)
    try:
        text_ = scrape(client)
    finally:
        app.config["HLS_DIR"] = saved
    assert value(text_, "studio_hls_backlog_files") == 4
    assert value(text_, "studio_hls_oldest_file_age_seconds") >= 120
    assert 0 < value(text_, "studio_hls_disk_used_ratio") <= 1


def test_metrics_survive_a_dead_dependency(app, db):
    """A scrape still answers (without the Redis gauges) when Redis is down."""
    from tests.test_health import NOTHING_LISTENS, app_with

    broken = app_with(app, REDIS_URL=f"redis://{NOTHING_LISTENS}/0")
    text_ = scrape(broken.test_client())
    names = {name for name, _ in samples(text_)}
    assert "studio_live_streams" in names
    assert "studio_queue_depth" not in names
