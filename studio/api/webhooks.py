"""JSON API v1: your webhook endpoints and their delivery logs.

Routes on the API blueprint of `studio.api.views` (same token, same error
format, same OpenAPI document). The rules live in `studio.webhooks.service`;
deliveries are queued for the workers (`studio.media.jobs`).
"""

from __future__ import annotations

from flask import current_app, url_for
from flask_openapi3 import Tag

from studio import secretbox
from studio.api import openapi
from studio.api.errors import error_reply
from studio.api.schemas import (
    DeliveryList,
    DeliveryOut,
    TestQueued,
    WebhookCreate,
    WebhookCreated,
    WebhookList,
    WebhookOut,
    WebhookPath,
)
from studio.api.views import INVALID_BODY, bp, caller, reply
from studio.extensions import db
from studio.models import WebhookDelivery, WebhookEndpoint
from studio.redis_client import get_redis
from studio.webhooks import addresses, announce, service

TAGS = [Tag(name="webhooks", description="Signed HTTP callbacks of your streams' events.")]
NOT_FOUND = openapi.error_response("No such webhook among yours (another creator's is 404 too).")


def allowed_networks() -> list[addresses.Network]:
    """The networks the operator allowed despite being private."""
    return addresses.networks(current_app.config.get("WEBHOOK_ALLOWED_NETWORKS", []))


def webhook_fields(endpoint: WebhookEndpoint) -> dict:
    return {
        "id": endpoint.id,
        "url": endpoint.url,
        "events": list(endpoint.events),
        "enabled": endpoint.enabled,
        "disabled_reason": endpoint.disabled_reason,
        "created_at": endpoint.created_at,
        "last_success_at": endpoint.last_success_at,
        "last_failure_at": endpoint.last_failure_at,
    }


def delivery_out(delivery: WebhookDelivery) -> DeliveryOut:
    return DeliveryOut(
        event_id=delivery.event_id,
        event_type=delivery.event_type,
        attempt=delivery.attempt,
        status_code=delivery.status_code,
        ok=delivery.ok,
        error=delivery.error,
        duration_ms=delivery.duration_ms,
        attempted_at=delivery.attempted_at,
    )


@bp.post(
    "/webhooks",
    tags=TAGS,
    responses={201: WebhookCreated, 400: INVALID_BODY},
    description=(
        "The reply carries the signing `secret`, shown this once. Refused (400, nothing "
        "saved): a URL that is not http(s), has credentials, or whose host resolves to a "
        "private, loopback or link-local address; an unknown event; more than 10 webhooks."
    ),
)
def create_webhook(body: WebhookCreate):
    """Register a webhook endpoint."""
    box = secretbox.from_config(current_app.config)
    endpoint, secret = service.create_endpoint(
        db.session, box, caller(), body.url, list(body.events), allowed_networks()
    )
    db.session.commit()
    created = WebhookCreated(**webhook_fields(endpoint), secret=secret)
    location = url_for(".list_webhook_deliveries", webhook_id=endpoint.id)
    return reply(created, 201, {"Location": location})


@bp.get("/webhooks", tags=TAGS, responses={200: WebhookList})
def list_webhooks():
    """List your webhook endpoints, newest first (without their secrets)."""
    endpoints = service.list_endpoints(db.session, caller())
    return reply(WebhookList(webhooks=[WebhookOut(**webhook_fields(e)) for e in endpoints]))


@bp.delete("/webhooks/<int:webhook_id>", tags=TAGS, responses={204: None, 404: NOT_FOUND})
def delete_webhook(path: WebhookPath):
    """Delete a webhook endpoint and its delivery log; queued deliveries are dropped."""
    endpoint = service.get_owned_endpoint(db.session, caller(), path.webhook_id)
    service.delete_endpoint(db.session, endpoint)
    db.session.commit()
    return reply(None)


@bp.get(
    "/webhooks/<int:webhook_id>/deliveries",
    tags=TAGS,
    responses={200: DeliveryList, 404: NOT_FOUND},
)
def list_webhook_deliveries(path: WebhookPath):
    """The webhook's delivery log: each attempt with the receiver's status, newest first."""
    endpoint = service.get_owned_endpoint(db.session, caller(), path.webhook_id)
    deliveries = service.list_deliveries(db.session, endpoint)
    return reply(DeliveryList(deliveries=[delivery_out(d) for d in deliveries]))


@bp.post(
    "/webhooks/<int:webhook_id>/test",
    tags=TAGS,
    responses={202: TestQueued, 404: NOT_FOUND},
    description=(
        "Queues one `webhook.test` event (one attempt, no retries); its outcome appears in "
        "the delivery log. A success enables a disabled webhook again. At most one every "
        f"{announce.TEST_INTERVAL} s per webhook (429 with Retry-After otherwise)."
    ),
)
def test_webhook(path: WebhookPath):
    """Send a test event."""
    endpoint = service.get_owned_endpoint(db.session, caller(), path.webhook_id)
    event_id = announce.send_test(get_redis(), endpoint.id)
    if event_id is None:
        return error_reply(
            429,
            f"A test event was just sent; try again in {announce.TEST_INTERVAL} seconds.",
            headers={"Retry-After": str(announce.TEST_INTERVAL)},
        )
    return reply(TestQueued(event_id=event_id), 202)
