"""Webhook endpoints: a creator's URLs that hear chosen events, signed.

Rules (no Flask; the caller commits):
- a creator has at most MAX_ENDPOINTS endpoints; each names one or more of
  EVENT_TYPES and a URL that `addresses.check_url` allows;
- the signing secret is made here and shown once (the caller returns it on
  creation only; it is never listed again); it is stored sealed by the
  caller's box (`studio.secretbox`), which the delivery worker opens to sign;
- every delivery attempt is logged, the last LOG_KEEP per endpoint;
- an endpoint is disabled when one event could not be delivered by any of
  its attempts (RQ retries it with exponential backoff for about a day:
  `studio.media.jobs.DELIVER_WEBHOOK`); a successful test delivery enables
  it again.

Signature: `Studio-Signature: t=<unix seconds>,v1=<hex>` where hex is the
HMAC-SHA256 of `<t>.<body>` with the endpoint's secret (docs/webhooks.md).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from studio.errors import NotFound, ValidationError
from studio.models import User, WebhookDelivery, WebhookEndpoint, utcnow
from studio.streams.targets import Sealer
from studio.webhooks import addresses

EVENT_TYPES = (
    "stream.live",
    "stream.reconnecting",
    "stream.ended",
    "replay.ready",
    "publish.refused",
    "target.failed",
)
TEST_EVENT = "webhook.test"
MAX_ENDPOINTS = 10
LOG_KEEP = 50
SECRET_PREFIX = "whsec_"  # noqa: S105 (a prefix, not a secret)
SIGNATURE_HEADER = "Studio-Signature"


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def clean_events(chosen: object) -> list[str]:
    """The chosen event types in their canonical order; raises ValidationError."""
    if not isinstance(chosen, list | tuple) or not chosen:
        raise ValidationError("Invalid webhook.", {"events": "Choose at least one event."})
    unknown = [e for e in chosen if not isinstance(e, str) or e not in EVENT_TYPES]
    if unknown:
        shown = ", ".join(repr(e)[:40] for e in unknown[:3])
        raise ValidationError(
            "Invalid webhook.",
            {"events": f"Unknown event {shown}; choose from: {', '.join(EVENT_TYPES)}."},
        )
    return [e for e in EVENT_TYPES if e in chosen]


def clean_url(url: object, allowed: Iterable[addresses.Network] = ()) -> str:
    """A URL webhooks may be sent to; raises ValidationError saying why not."""
    try:
        return addresses.check_url(url, allowed)
    except addresses.UnsafeUrl as exc:
        raise ValidationError("Invalid webhook.", {"url": str(exc)}) from None


def create_endpoint(
    session: Session,
    box: Sealer,
    owner: User,
    url: object,
    events: object,
    allowed: Iterable[addresses.Network] = (),
) -> tuple[WebhookEndpoint, str]:
    """A new endpoint and its signing secret (to show once; stored sealed by
    `box`). Raises ValidationError for a bad URL or event list, or one
    endpoint too many."""
    chosen = clean_events(events)
    checked = clean_url(url, allowed)
    count = session.scalar(
        select(func.count(WebhookEndpoint.id)).where(WebhookEndpoint.owner_id == owner.id)
    )
    if count >= MAX_ENDPOINTS:
        raise ValidationError(f"At most {MAX_ENDPOINTS} webhooks; delete one first.")
    secret = new_secret()
    endpoint = WebhookEndpoint(
        owner_id=owner.id,
        url=checked,
        events=chosen,
        secret_encrypted=box.seal(secret),
        enabled=True,
        created_at=utcnow(),
    )
    session.add(endpoint)
    session.flush()
    return endpoint, secret


def list_endpoints(session: Session, owner: User) -> list[WebhookEndpoint]:
    """The owner's endpoints, newest first."""
    query = (
        select(WebhookEndpoint)
        .where(WebhookEndpoint.owner_id == owner.id)
        .order_by(WebhookEndpoint.id.desc())
    )
    return list(session.scalars(query))


def get_owned_endpoint(session: Session, owner: User, endpoint_id: int) -> WebhookEndpoint:
    """The owner's endpoint; NotFound for anyone else's (no existence leak)."""
    endpoint = session.scalar(
        select(WebhookEndpoint).where(
            WebhookEndpoint.id == endpoint_id, WebhookEndpoint.owner_id == owner.id
        )
    )
    if endpoint is None:
        raise NotFound("Webhook not found.")
    return endpoint


def delete_endpoint(session: Session, endpoint: WebhookEndpoint) -> None:
    """Delete the endpoint and its log; deliveries still queued find it gone."""
    session.delete(endpoint)


def list_deliveries(
    session: Session, endpoint: WebhookEndpoint, limit: int = LOG_KEEP
) -> list[WebhookDelivery]:
    """The endpoint's delivery attempts, newest first."""
    query = (
        select(WebhookDelivery)
        .where(WebhookDelivery.endpoint_id == endpoint.id)
        .order_by(WebhookDelivery.attempted_at.desc(), WebhookDelivery.id.desc())
        .limit(limit)
    )
    return list(session.scalars(query))


def subscribed_endpoints(session: Session, owner_id: int, event_type: str) -> list[WebhookEndpoint]:
    """The owner's enabled endpoints that chose `event_type`."""
    query = select(WebhookEndpoint).where(
        WebhookEndpoint.owner_id == owner_id,
        WebhookEndpoint.enabled.is_(True),
        WebhookEndpoint.events.contains([event_type]),
    )
    return list(session.scalars(query.order_by(WebhookEndpoint.id)))


def new_event(event_type: str, data: dict, at: datetime | None = None) -> dict:
    """The JSON envelope every receiver gets (`id` is the same for every
    attempt: receivers use it to ignore a repeat)."""
    return {
        "id": "evt_" + uuid.uuid4().hex,
        "type": event_type,
        "created_at": (at or utcnow()).isoformat(),
        "data": data,
    }


def make_test_event() -> dict:
    """The event of the "Send test event" button."""
    return new_event(TEST_EVENT, {"message": "A test event from Live Studio."})


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The `Studio-Signature` header value of `body` sent at `timestamp`."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={digest.hexdigest()}"


def record_delivery(
    session: Session,
    endpoint: WebhookEndpoint,
    event: dict,
    *,
    attempt: int,
    status_code: int | None,
    error: str | None,
    duration_ms: int,
    last_attempt: bool,
    disable_reason: str | None = None,
) -> WebhookDelivery:
    """Log one attempt (keeping the last LOG_KEEP) and apply the disable rule:
    the last attempt of a real event failing disables the endpoint (saying
    `disable_reason`, else that every attempt failed); a test event that
    succeeds enables it again."""
    now = utcnow()
    ok = status_code is not None and 200 <= status_code < 300
    delivery = WebhookDelivery(
        endpoint_id=endpoint.id,
        event_id=str(event.get("id", ""))[:40],
        event_type=str(event.get("type", ""))[:32],
        attempt=attempt,
        status_code=status_code,
        ok=ok,
        error=(error or None) and error[:200],
        duration_ms=max(0, duration_ms),
        attempted_at=now,
    )
    session.add(delivery)
    is_test = event.get("type") == TEST_EVENT
    if ok:
        endpoint.last_success_at = now
        if is_test and not endpoint.enabled:
            endpoint.enabled, endpoint.disabled_reason = True, None
    else:
        endpoint.last_failure_at = now
        if last_attempt and not is_test and endpoint.enabled:
            endpoint.enabled = False
            outcome = f"HTTP {status_code}" if status_code is not None else (error or "no answer")
            endpoint.disabled_reason = (
                disable_reason
                or f"Every attempt to deliver {delivery.event_type} failed for a day "
                f"(last: {outcome})."
            )[:200]
    session.flush()
    older = (
        select(WebhookDelivery.id)
        .where(WebhookDelivery.endpoint_id == endpoint.id)
        .order_by(WebhookDelivery.attempted_at.desc(), WebhookDelivery.id.desc())
        .offset(LOG_KEEP)
    )
    session.execute(delete(WebhookDelivery).where(WebhookDelivery.id.in_(older)))
    return delivery
