"""Webhook deliveries end to end: a real publish callback, the RQ worker, a
real HTTP receiver; signatures, retries with backoff, the disable rule,
addresses refused at delivery time, and callbacks never waiting on a receiver."""

from __future__ import annotations

import json
import threading

from prometheus_client import REGISTRY
from sqlalchemy import select

from studio import secretbox
from studio.core import replays
from studio.media import jobs
from studio.models import Broadcast, WebhookDelivery, WebhookEndpoint
from studio.webhooks import addresses, service
from tests.conftest import load_fixture
from tests.webhook_receiver import documented_verify
from tests.webhooks.conftest import queue, release_retries, run_worker

HOOK = "/hooks/srs?token=test-hook-token"


def publish(client, stream, client_id: str = "c1", key: str | None = None) -> dict:
    body = load_fixture("on_publish.json") | {
        "stream": stream.public_id,
        "param": f"?secret={key or stream.stream_key}",
        "client_id": client_id,
        "ip": "203.0.113.9",
    }
    reply = client.post(HOOK, data=json.dumps(body), content_type="application/json")
    return reply.get_json()


def register(api, url: str, events: list[str]) -> dict:
    reply = api.post("/webhooks", {"url": url, "events": events})
    assert reply.status_code == 201, reply.get_json()
    return reply.get_json()


def sample(outcome: str | None) -> float:
    """studio_webhook_deliveries_total{outcome} (None: endpoints disabled)."""
    if outcome is None:
        return REGISTRY.get_sample_value("studio_webhooks_disabled_total") or 0.0
    labels = {"outcome": outcome}
    return REGISTRY.get_sample_value("studio_webhook_deliveries_total", labels) or 0.0


def deliveries(api, webhook_id: int) -> list[dict]:
    reply = api.get(f"/webhooks/{webhook_id}/deliveries")
    assert reply.status_code == 200
    return reply.get_json()["deliveries"]


def test_stream_live_is_delivered_signed_and_verifies_with_the_documented_snippet(
    webhook_app, client, db, redis, receiver, creator_api, make_stream
):
    """A publish callback → `stream.live` at the receiver; the signature
    verifies with docs/webhooks.md's snippet and the secret from creation,
    and fails with another secret or a changed body."""
    user, api = creator_api()
    hook = register(api, receiver.url, ["stream.live"])
    assert hook["secret"].startswith("whsec_")
    stream = make_stream(user)
    assert publish(client, stream)["code"] == 0
    assert receiver.requests == []  # nothing is sent from the callback itself

    run_worker(redis)

    assert len(receiver.requests) == 1
    request = receiver.requests[0]
    event = request.json()
    assert event["type"] == "stream.live"
    assert event["data"]["stream"] == {"id": stream.public_id}
    assert event["data"]["broadcast"]["protocol"] == "rtmp"
    assert request.headers["Studio-Event"] == "stream.live"
    assert request.headers["Studio-Delivery"] == event["id"]
    verify = documented_verify()
    signature = request.headers["Studio-Signature"]
    assert verify(hook["secret"], signature, request.body)
    assert not verify("whsec_other", signature, request.body)
    assert not verify(hook["secret"], signature, request.body.replace(b"rtmp", b"rtmq"))
    log = deliveries(api, hook["id"])
    assert [(d["attempt"], d["status_code"], d["ok"]) for d in log] == [(1, 200, True)]


def test_only_the_chosen_events_of_the_owners_streams_are_sent(
    webhook_app, client, db, redis, receiver, creator_api, make_stream
):
    """An endpoint hears only the events it chose, of its owner's streams."""
    user, api = creator_api()
    register(api, receiver.url, ["stream.ended"])
    other, _ = creator_api()
    publish(client, make_stream(other), client_id="other")  # someone else's stream
    stream = make_stream(user)
    publish(client, stream)  # stream.live: not chosen
    run_worker(redis)
    assert receiver.requests == []
    unpublish = load_fixture("on_unpublish.json") | {"stream": stream.public_id, "client_id": "c1"}
    client.post(HOOK, data=json.dumps(unpublish), content_type="application/json")
    run_worker(redis)
    assert [r.json()["type"] for r in receiver.requests] == ["stream.ended"]
    assert receiver.requests[0].json()["data"]["broadcast"]["end_reason"] == "unpublish"


def test_no_webhook_job_is_queued_for_an_owner_without_an_enabled_endpoint(
    webhook_app, client, db, redis, receiver, creator_api, make_stream
):
    """A publish and an unpublish of a creator with no endpoint, or with
    only a disabled one, queue no webhook job (it would reach nobody); those
    of a creator with an enabled endpoint queue theirs as always."""
    listener, api = creator_api()
    register(api, receiver.url, ["stream.live", "stream.ended"])
    quiet, _ = creator_api()
    disabled, disabled_api = creator_api()
    endpoint = register(disabled_api, receiver.url, ["stream.live", "stream.ended"])
    db.session.get(WebhookEndpoint, endpoint["id"]).enabled = False
    db.session.commit()
    streams = {owner.id: make_stream(owner) for owner in (quiet, disabled, listener)}
    for stream in streams.values():
        assert publish(client, stream)["code"] == 0
        body = load_fixture("on_unpublish.json") | {"stream": stream.public_id, "client_id": "c1"}
        client.post(HOOK, data=json.dumps(body), content_type="application/json")
    queued = queue(redis).get_jobs()
    assert [job.args[0] for job in queued] == [streams[listener.id].public_id] * 2
    run_worker(redis)
    assert [r.json()["type"] for r in receiver.requests] == ["stream.live", "stream.ended"]


def test_a_500_is_retried_with_growing_backoff_until_it_succeeds(
    webhook_app, client, db, redis, receiver, creator_api, make_stream
):
    """500, 500, then 200: RQ schedules the retries after 30 s then 60 s
    (exponential), the same event id arrives three times, the log shows it."""
    user, api = creator_api()
    hook = register(api, receiver.url, ["stream.live"])
    receiver.statuses = [500, 500]
    publish(client, make_stream(user))

    run_worker(redis)
    first = release_retries(redis)
    run_worker(redis)
    second = release_retries(redis)
    run_worker(redis)

    # Each delay as seen a moment after the attempt (a busy machine may take seconds).
    assert len(first) == 1 and 20 <= first[0] <= 30
    assert len(second) == 1 and 50 <= second[0] <= 60
    assert release_retries(redis) == []  # delivered: nothing left to retry
    ids = {r.json()["id"] for r in receiver.requests}
    assert len(receiver.requests) == 3 and len(ids) == 1
    log = deliveries(api, hook["id"])
    assert [(d["attempt"], d["status_code"], d["ok"]) for d in log] == [
        (3, 200, True),
        (2, 500, False),
        (1, 500, False),
    ]
    assert api.get("/webhooks").get_json()["webhooks"][0]["enabled"] is True


def test_persistent_failure_disables_the_endpoint_and_a_good_test_enables_it(
    webhook_app, client, db, redis, receiver, creator_api, make_stream
):
    """Every attempt of a day failing (15 attempts, backoff up to 4 h)
    disables the endpoint; later events are not sent; a test event that gets
    a 200 enables it again."""
    user, api = creator_api()
    hook = register(api, receiver.url, ["stream.live", "stream.ended"])
    receiver.default = 500
    stream = make_stream(user)
    publish(client, stream)
    failed_before, disabled_before = sample("failed"), sample(None)

    delays = []
    run_worker(redis)
    while pending := release_retries(redis):
        delays += pending
        run_worker(redis)

    assert len(receiver.requests) == len(jobs.WEBHOOK_BACKOFF) + 1 == 15
    assert len(delays) == len(jobs.WEBHOOK_BACKOFF)
    assert all(i - 10 <= d <= i for d, i in zip(delays, jobs.WEBHOOK_BACKOFF, strict=True))
    assert sum(jobs.WEBHOOK_BACKOFF) >= 86400
    listed = api.get("/webhooks").get_json()["webhooks"][0]
    assert listed["enabled"] is False
    assert "failed for a day" in listed["disabled_reason"]
    assert "HTTP 500" in listed["disabled_reason"]
    assert sample("failed") - failed_before == 15
    assert sample(None) - disabled_before == 1

    receiver.default = 200
    unpublish = load_fixture("on_unpublish.json") | {"stream": stream.public_id, "client_id": "c1"}
    client.post(HOOK, data=json.dumps(unpublish), content_type="application/json")
    run_worker(redis)
    assert len(receiver.requests) == 15  # disabled: stream.ended not sent

    reply = api.post(f"/webhooks/{hook['id']}/test")
    assert reply.status_code == 202
    run_worker(redis)
    assert receiver.requests[-1].json()["type"] == "webhook.test"
    assert receiver.requests[-1].json()["id"] == reply.get_json()["event_id"]
    assert api.get("/webhooks").get_json()["webhooks"][0]["enabled"] is True


def test_a_secret_no_configured_key_opens_disables_the_endpoint_at_once(
    webhook_app, client, db, redis, receiver, creator_api, make_stream, monkeypatch
):
    """A signing secret sealed under a key since dropped from
    STUDIO_TARGET_KEYS cannot sign: nothing is sent, no retry is planned,
    and the endpoint is disabled saying why and what to do."""
    user, api = creator_api()
    register(api, receiver.url, ["stream.live"])
    other_key = secretbox.derived_key("another installation's secret key")
    monkeypatch.setitem(webhook_app.config, "TARGET_KEYS", [other_key])
    # Sealed with the key derived from the secret key, which is rotated too.
    monkeypatch.setitem(webhook_app.config, "SECRET_KEY", "a rotated secret key")
    publish(client, make_stream(user))

    run_worker(redis)
    assert release_retries(redis) == []
    assert receiver.requests == []
    listed = api.get("/webhooks").get_json()["webhooks"][0]
    assert listed["enabled"] is False
    assert "cannot be decrypted" in listed["disabled_reason"]
    assert "add it again" in listed["disabled_reason"]


def test_a_failed_test_event_is_logged_once_and_never_retried(
    webhook_app, db, redis, receiver, creator_api
):
    """ "Send test event" makes one attempt: a 500 is logged, not retried,
    and does not disable the endpoint."""
    _, api = creator_api()
    hook = register(api, receiver.url, ["stream.live"])
    receiver.default = 500
    api.post(f"/webhooks/{hook['id']}/test")
    run_worker(redis)
    assert release_retries(redis) == []
    log = deliveries(api, hook["id"])
    assert [(d["event_type"], d["status_code"]) for d in log] == [("webhook.test", 500)]
    assert api.get("/webhooks").get_json()["webhooks"][0]["enabled"] is True


def test_a_redirect_is_not_followed(webhook_app, db, redis, receiver, creator_api):
    """A 302 is a failure logged with its status; the Location is never requested."""
    _, api = creator_api()
    hook = register(api, receiver.url, ["stream.live"])
    receiver.default = 302
    receiver.redirect_to = receiver.url.replace("/hook", "/moved")
    api.post(f"/webhooks/{hook['id']}/test")
    run_worker(redis)
    assert [r.path for r in receiver.requests] == ["/hook"]
    [entry] = deliveries(api, hook["id"])
    assert (entry["status_code"], entry["ok"], entry["error"]) == (
        302,
        False,
        "redirect not followed",
    )


def test_an_address_no_longer_allowed_at_delivery_time_is_not_contacted(
    webhook_app, db, redis, receiver, creator_api, monkeypatch
):
    """The host is resolved and checked again for every delivery: once its
    address is no longer allowed (here the operator's allowance is gone; a
    DNS answer switched to a private address is the same case), nothing is
    sent and the refusal is logged."""
    _, api = creator_api()
    hook = register(api, receiver.url, ["stream.live"])
    monkeypatch.setitem(webhook_app.config, "WEBHOOK_ALLOWED_NETWORKS", [])
    refused_before = sample("refused")
    api.post(f"/webhooks/{hook['id']}/test")
    run_worker(redis)
    assert sample("refused") - refused_before == 1
    assert receiver.requests == []
    [entry] = deliveries(api, hook["id"])
    assert entry["status_code"] is None and "private, loopback" in entry["error"]


def test_a_slow_receiver_never_slows_a_publish_callback(
    webhook_app, client, db, redis, receiver, creator_api, make_stream
):
    """While the worker's delivery hangs at the receiver, another publish
    callback is answered without contacting the receiver (its webhook is
    queued); each hanging delivery ends at the timeout and is logged."""
    user, api = creator_api()
    hook = register(api, receiver.url, ["stream.live"])
    first, second = make_stream(user), make_stream(user)
    second_name, second_key = second.public_id, second.stream_key
    receiver.hold.set()
    publish(client, first, client_id="first")
    seen = {}

    def publish_meanwhile():
        assert receiver.holding.wait(10), "the first delivery never reached the receiver"
        body = load_fixture("on_publish.json") | {
            "stream": second_name,
            "param": f"?secret={second_key}",
            "client_id": "second",
        }
        reply = webhook_app.test_client().post(
            HOOK, data=json.dumps(body), content_type="application/json"
        )
        seen["code"] = reply.get_json()["code"]
        seen["requests"], seen["answered"] = len(receiver.requests), receiver.answered

    other = threading.Thread(target=publish_meanwhile)
    other.start()
    run_worker(redis)  # delivers the first event: hangs until the timeout
    other.join(30)
    run_worker(redis)  # the second event

    assert seen == {"code": 0, "requests": 1, "answered": 0}
    assert len(receiver.requests) == 2
    log = deliveries(api, hook["id"])
    assert len(log) == 2
    assert all(d["status_code"] is None and d["error"] == "no answer within 1 s" for d in log)


def test_the_delivery_log_keeps_the_last_50_attempts(webhook_app, db, redis, creator_api):
    """An endpoint's log is bounded: its newest 50 attempts are kept."""
    user, _ = creator_api()
    loopback = addresses.networks(["127.0.0.0/8"])
    box = secretbox.from_config(webhook_app.config)
    endpoint, _ = service.create_endpoint(
        db.session, box, user, "http://127.0.0.1:9/x", ["stream.live"], loopback
    )
    for number in range(60):
        service.record_delivery(
            db.session,
            endpoint,
            {"id": f"evt_{number}", "type": "stream.live"},
            attempt=1,
            status_code=200,
            error=None,
            duration_ms=1,
            last_attempt=False,
        )
    db.session.commit()
    kept = db.session.scalars(
        select(WebhookDelivery.event_id).where(WebhookDelivery.endpoint_id == endpoint.id)
    ).all()
    assert len(kept) == service.LOG_KEEP == 50
    assert "evt_59" in kept and "evt_9" not in kept
    assert db.session.get(WebhookEndpoint, endpoint.id).enabled


def test_a_refused_publish_is_sent_as_publish_refused(
    webhook_app, client, db, redis, receiver, creator_api, make_stream
):
    """A wrong key at the real hook endpoint → `publish.refused` with the
    reason in words and the publisher's address."""
    user, api = creator_api()
    register(api, receiver.url, ["publish.refused"])
    stream = make_stream(user)
    assert publish(client, stream, key="an-old-key")["code"] != 0
    run_worker(redis)
    [request] = receiver.requests
    event = request.json()
    assert event["type"] == "publish.refused"
    assert event["data"]["stream"] == {"id": stream.public_id}
    assert (event["data"]["reason"], event["data"]["address"]) == ("old key", "203.0.113.9")


def test_replay_ready_carries_the_replay_url(
    webhook_app, client, db, redis, receiver, creator_api, make_stream
):
    """The replay being marked ready (as the finalize job does) → `replay.ready`
    with the CDN URL of the replay playlist."""
    user, api = creator_api()
    register(api, receiver.url, ["replay.ready"])
    stream = make_stream(user)
    publish(client, stream)
    broadcast = db.session.scalar(select(Broadcast))
    replays.mark_replay_ready(db.session, broadcast, stream.public_id)
    db.session.commit()
    run_worker(redis)
    [request] = receiver.requests
    data = request.json()["data"]
    assert data["broadcast"] == {"id": broadcast.id}
    assert data["replay_url"].startswith("https://cdn.studio.test/")
    assert data["replay_url"].endswith(".m3u8")
