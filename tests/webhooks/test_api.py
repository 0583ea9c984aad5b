"""The webhooks API: registering (and refusing bad URLs), listing without
secrets, deleting, the delivery log, and who may see what."""

from __future__ import annotations

import ipaddress

import pytest
from sqlalchemy import func, select

from studio.models import WebhookEndpoint
from studio.webhooks import addresses, service


def count(db) -> int:
    db.session.rollback()
    return db.session.scalar(select(func.count(WebhookEndpoint.id)))


def test_create_returns_the_secret_once_and_lists_without_it(webhook_app, db, creator_api):
    """The signing secret is in the 201 reply only; the list never shows it."""
    _, api = creator_api()
    reply = api.post(
        "/webhooks", {"url": "http://127.0.0.1:8000/in", "events": ["stream.ended", "stream.live"]}
    )
    assert reply.status_code == 201
    created = reply.get_json()
    assert created["secret"].startswith("whsec_") and len(created["secret"]) > 40
    assert created["events"] == ["stream.live", "stream.ended"]  # canonical order
    assert created["enabled"] is True
    assert reply.headers["Location"] == f"/api/v1/webhooks/{created['id']}/deliveries"
    listed = api.get("/webhooks").get_json()["webhooks"]
    assert [w["id"] for w in listed] == [created["id"]]
    assert "secret" not in listed[0]
    assert created["secret"] not in api.get("/webhooks").get_data(as_text=True)


def test_every_event_type_may_be_chosen(webhook_app, db, creator_api):
    """The six events, including those other parts of the studio raise."""
    _, api = creator_api()
    reply = api.post(
        "/webhooks", {"url": "http://127.0.0.1/x", "events": list(service.EVENT_TYPES)}
    )
    assert reply.status_code == 201
    assert reply.get_json()["events"] == [
        "stream.live",
        "stream.reconnecting",
        "stream.ended",
        "replay.ready",
        "publish.refused",
        "target.failed",
    ]


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("ftp://example.com/x", "Only http:// and https://"),
        ("javascript:alert(1)", "Only http:// and https://"),
        ("http://user:pw@example.com/x", "user name or password"),
        ("https://token@example.com/x", "user name or password"),
        ("http:///nohost", "no host"),
        ("http://127.0.0.1/x", "private, loopback"),
        ("http://localhost:8080/x", "private, loopback"),
        ("http://10.1.2.3/x", "private, loopback"),
        ("http://192.168.1.1/x", "private, loopback"),
        ("http://169.254.169.254/latest/meta-data", "private, loopback"),
        ("http://[::1]/x", "private, loopback"),
        ("http://[::ffff:127.0.0.1]/x", "private, loopback"),
        ("http://[fe80::1]/x", "private, loopback"),
        ("http://0.0.0.0/x", "private, loopback"),
        ("http://100.64.0.1/x", "private, loopback"),
        ("http://224.0.0.1/x", "private, loopback"),
        ("http://example.com:99999/x", "Not a valid URL"),
        ("http://exa mple.com/x", "no spaces"),
        ("https://example.com/x#frag", "fragment"),
        ("http://no-such-host.invalid/x", "does not resolve"),
        ("http://bücher.invalid/x", "does not resolve"),
        ("http://" + "a" * 70 + ".com/x", "not a valid name"),
        ("http://2130706433/x", "private, loopback"),  # 127.0.0.1 as a number
        ("https://example.com/" + "a" * 2100, "At most 2048"),
    ],
)
def test_bad_urls_are_refused_and_nothing_is_saved(app, db, redis, creator_api, url, says):
    """Not http(s), credentials, private/loopback/link-local (also IPv4-mapped
    IPv6 and names resolving there): 400 naming the URL field; no row."""
    _, api = creator_api()
    reply = api.post("/webhooks", {"url": url, "events": ["stream.live"]})
    assert reply.status_code == 400
    assert says in reply.get_json()["fields"]["url"]
    assert count(db) == 0


def test_the_operator_may_allow_chosen_private_networks(app, db, redis, creator_api, monkeypatch):
    """STUDIO_WEBHOOK_ALLOWED_NETWORKS lets exactly those networks through."""
    _, api = creator_api()
    monkeypatch.setitem(app.config, "WEBHOOK_ALLOWED_NETWORKS", ["10.0.0.0/8"])
    assert (
        api.post("/webhooks", {"url": "http://10.9.8.7/x", "events": ["stream.live"]}).status_code
        == 201
    )
    assert (
        api.post(
            "/webhooks", {"url": "http://192.168.0.2/x", "events": ["stream.live"]}
        ).status_code
        == 400
    )


def test_the_address_rule_on_its_own():
    """Public v4 and v6 addresses pass; documentation, private and mapped ones do not."""
    allowed = addresses.address_allowed
    ip = ipaddress.ip_address
    assert allowed(ip("8.8.8.8")) and allowed(ip("2001:4860:4860::8888"))
    assert not allowed(ip("203.0.113.9"))  # documentation range
    assert not allowed(ip("::ffff:10.0.0.1"))
    assert allowed(ip("::ffff:10.0.0.1"), addresses.networks(["10.0.0.0/8"]))


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"url": "http://127.0.0.1/x", "events": []}, "events"),
        ({"url": "http://127.0.0.1/x", "events": ["stream.exploded"]}, "events"),
        ({"url": "http://127.0.0.1/x", "events": "stream.live"}, "events"),
        ({"url": "http://127.0.0.1/x", "events": ["stream.live"] * 7}, "events"),
        ({"url": 5, "events": ["stream.live"]}, "url"),
        ({"events": ["stream.live"]}, "url"),
        ({"url": "http://127.0.0.1/x"}, "events"),
        ({"url": "http://127.0.0.1/x", "events": ["stream.live"], "secret": "mine"}, "secret"),
    ],
)
def test_malformed_bodies_are_refused(webhook_app, db, creator_api, body, field):
    """Wrong types, unknown or missing fields, no or unknown events: 400
    naming the field; nothing saved."""
    _, api = creator_api()
    reply = api.post("/webhooks", body)
    assert reply.status_code == 400
    assert any(name.split(".")[0] == field for name in reply.get_json()["fields"])
    assert count(db) == 0


def test_nul_in_the_url_is_refused(webhook_app, db, creator_api):
    """A NUL character in the URL is refused by the input guard; nothing saved."""
    _, api = creator_api()
    reply = api.post("/webhooks", {"url": "http://127.0.0.1/\u0000x", "events": ["stream.live"]})
    assert reply.status_code == 400
    assert count(db) == 0


def test_at_most_ten_webhooks_per_creator(webhook_app, db, creator_api):
    """The eleventh webhook of a creator is refused."""
    _, api = creator_api()
    body = {"url": "http://127.0.0.1/x", "events": ["stream.live"]}
    for _ in range(service.MAX_ENDPOINTS):
        assert api.post("/webhooks", body).status_code == 201
    reply = api.post("/webhooks", body)
    assert reply.status_code == 400
    assert "At most 10" in reply.get_json()["error"]
    assert count(db) == 10


def test_another_creator_can_neither_see_nor_touch_your_webhooks(
    webhook_app, db, redis, creator_api
):
    """Their list is empty; delete, deliveries and test of your id are 404
    (the same as an id that does not exist); yours stays."""
    _, mine = creator_api()
    _, theirs = creator_api()
    hook = mine.post("/webhooks", {"url": "http://127.0.0.1/x", "events": ["stream.live"]})
    webhook_id = hook.get_json()["id"]
    assert theirs.get("/webhooks").get_json() == {"webhooks": []}
    for reply in (
        theirs.delete(f"/webhooks/{webhook_id}"),
        theirs.get(f"/webhooks/{webhook_id}/deliveries"),
        theirs.post(f"/webhooks/{webhook_id}/test"),
    ):
        assert reply.status_code == 404
        assert reply.get_json() == {"error": "Webhook not found.", "fields": {}}
    assert theirs.delete("/webhooks/999999").get_json() == {
        "error": "Webhook not found.",
        "fields": {},
    }
    assert redis.llen("rq:queue:webhooks") == 0  # their test queued nothing
    assert [w["id"] for w in mine.get("/webhooks").get_json()["webhooks"]] == [webhook_id]


def test_no_token_no_webhooks(client, db):
    """Without an API token the webhooks API is 401."""
    assert client.get("/api/v1/webhooks").status_code == 401
    assert (
        client.post("/api/v1/webhooks", json={"url": "http://x", "events": []}).status_code == 401
    )


def test_delete_removes_the_webhook_and_its_log(webhook_app, db, redis, creator_api):
    """Deleting a webhook removes it and its delivery log (404 afterwards)."""
    _, api = creator_api()
    webhook_id = api.post(
        "/webhooks", {"url": "http://127.0.0.1:9/x", "events": ["stream.live"]}
    ).get_json()["id"]
    assert api.post(f"/webhooks/{webhook_id}/test").status_code == 202
    assert api.delete(f"/webhooks/{webhook_id}").status_code == 204
    assert api.get("/webhooks").get_json() == {"webhooks": []}
    assert api.get(f"/webhooks/{webhook_id}/deliveries").status_code == 404
    assert count(db) == 0


def test_test_events_are_throttled_per_webhook(webhook_app, db, redis, creator_api):
    """A second "send test event" within the interval is 429 and queues nothing."""
    _, api = creator_api()
    body = {"url": "http://127.0.0.1:9/x", "events": ["stream.live"]}
    first, second = (api.post("/webhooks", body).get_json()["id"] for _ in range(2))
    assert api.post(f"/webhooks/{first}/test").status_code == 202
    again = api.post(f"/webhooks/{first}/test")
    assert again.status_code == 429
    assert again.headers["Retry-After"] == "5"
    assert api.post(f"/webhooks/{second}/test").status_code == 202  # another webhook
    assert redis.llen("rq:queue:webhooks") == 2
