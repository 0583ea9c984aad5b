"""The Webhooks pages: add with event checkboxes (the secret shown once),
the delivery log with "Send test event", delete, and nobody else's."""

from __future__ import annotations

import re

from sqlalchemy import select

from studio import secretbox
from studio.models import WebhookEndpoint
from tests.conftest import csrf_token
from tests.webhooks.conftest import run_worker


def add(client, url: str, events: list[str]):
    token = csrf_token(client.get("/webhooks").get_data(as_text=True))
    return client.post("/webhooks", data={"url": url, "events": events, "csrf_token": token})


def test_add_shows_the_secret_once_and_lists_the_webhook(webhook_app, client, db, auth, make_user):
    """The page lists every event as a checkbox; adding shows the secret once, never again."""
    user = make_user()
    auth.login(user.email)
    page = client.get("/webhooks").get_data(as_text=True)
    for name in ("stream.live", "stream.reconnecting", "publish.refused", "target.failed"):
        assert f'value="{name}"' in page and 'type="checkbox"' in page

    reply = add(client, "http://127.0.0.1:8000/in", ["stream.live", "publish.refused"])
    assert reply.status_code == 201
    assert reply.headers["Cache-Control"] == "no-store"
    page = reply.get_data(as_text=True)
    secret = re.search(r'id="new-secret-value">(whsec_[^<]+)<', page).group(1)
    endpoint = db.session.scalar(select(WebhookEndpoint))
    assert endpoint.events == ["stream.live", "publish.refused"]
    # Stored sealed: the database alone does not give the secret away.
    assert secret.encode() not in endpoint.secret_encrypted
    assert secretbox.from_config(webhook_app.config).open(endpoint.secret_encrypted) == secret
    assert "http://127.0.0.1:8000/in" in page

    again = client.get("/webhooks").get_data(as_text=True)
    assert secret not in again and "http://127.0.0.1:8000/in" in again
    assert secret not in client.get(f"/webhooks/{endpoint.id}").get_data(as_text=True)


def test_a_bad_url_or_no_event_is_refused_with_the_reason(client, db, auth, make_user):
    """A private address, no event or an unknown event: 400 saying why; nothing saved."""
    auth.login(make_user().email)
    reply = add(client, "http://169.254.169.254/latest", ["stream.live"])
    assert reply.status_code == 400
    assert "private, loopback or link-local" in reply.get_data(as_text=True)
    reply = add(client, "https://example.com/x", [])
    assert reply.status_code == 400
    assert "Choose at least one event." in reply.get_data(as_text=True)
    reply = add(client, "http://127.0.0.1/x", ["stream.bogus"])
    assert reply.status_code == 400
    assert db.session.scalar(select(WebhookEndpoint)) is None


def test_send_test_event_and_see_it_in_the_log(
    webhook_app, client, db, redis, auth, make_user, receiver
):
    """ "Send test event" reaches the receiver and its answer shows in the log."""
    auth.login(make_user().email)
    add(client, receiver.url, ["stream.live"])
    endpoint_id = db.session.scalar(select(WebhookEndpoint.id))
    page = client.get(f"/webhooks/{endpoint_id}").get_data(as_text=True)
    assert "Nothing sent yet." in page
    reply = client.post(f"/webhooks/{endpoint_id}/test", data={"csrf_token": csrf_token(page)})
    assert reply.status_code == 302
    run_worker(redis)
    assert [r.json()["type"] for r in receiver.requests] == ["webhook.test"]
    log = client.get(f"/webhooks/{endpoint_id}/log").get_data(as_text=True)
    assert "HTTP 200" in log and "webhook.test" in log
    assert "HTTP 200" in client.get(f"/webhooks/{endpoint_id}").get_data(as_text=True)


def test_delete_from_the_page(webhook_app, client, db, auth, make_user):
    """The Delete button removes the webhook."""
    auth.login(make_user().email)
    add(client, "http://127.0.0.1/x", ["stream.ended"])
    endpoint_id = db.session.scalar(select(WebhookEndpoint.id))
    token = auth.form_token("/webhooks")
    reply = client.post(f"/webhooks/{endpoint_id}/delete", data={"csrf_token": token})
    assert reply.status_code == 302
    db.session.rollback()
    assert db.session.scalar(select(WebhookEndpoint)) is None


def test_another_creators_webhook_pages_are_404(webhook_app, client, db, redis, auth, make_user):
    """Another creator's webhook pages, test and delete are 404 and change nothing."""
    owner, other = make_user(), make_user()
    auth.login(owner.email)
    add(client, "http://127.0.0.1/x", ["stream.live"])
    endpoint_id = db.session.scalar(select(WebhookEndpoint.id))
    auth.logout()
    auth.login(other.email)
    token = auth.form_token("/webhooks")
    assert "http://127.0.0.1/x" not in client.get("/webhooks").get_data(as_text=True)
    assert client.get(f"/webhooks/{endpoint_id}").status_code == 404
    assert client.get(f"/webhooks/{endpoint_id}/log").status_code == 404
    assert (
        client.post(f"/webhooks/{endpoint_id}/test", data={"csrf_token": token}).status_code == 404
    )
    assert (
        client.post(f"/webhooks/{endpoint_id}/delete", data={"csrf_token": token}).status_code
        == 404
    )
    assert redis.llen("rq:queue:webhooks") == 0
    db.session.rollback()
    assert db.session.get(WebhookEndpoint, endpoint_id) is not None


def test_the_pages_need_a_login(client, db):
    """The Webhooks pages send a visitor to the login page."""
    assert client.get("/webhooks").status_code == 302
    assert client.get("/webhooks/1").status_code == 302


def test_a_disabled_webhook_says_why_and_how_to_enable_it(webhook_app, client, db, auth, make_user):
    """A disabled webhook is marked, with its reason and the way back."""
    auth.login(make_user().email)
    add(client, "http://127.0.0.1/x", ["stream.live"])
    endpoint = db.session.scalar(select(WebhookEndpoint))
    endpoint.enabled = False
    endpoint.disabled_reason = (
        "Every attempt to deliver stream.live failed for a day (last: HTTP 500)."
    )
    db.session.commit()
    assert 'data-testid="webhook-disabled"' in client.get("/webhooks").get_data(as_text=True)
    page = client.get(f"/webhooks/{endpoint.id}").get_data(as_text=True)
    assert "failed for a day (last: HTTP 500)." in page
    assert "A test event that gets a 2xx answer enables it again." in page
