"""Webhook jobs: find the endpoints of an event, deliver it, log the outcome.

`dispatch` runs once per event and queues one `DELIVER_WEBHOOK` job per
subscribed endpoint. `deliver` makes one attempt: it resolves the host
again and connects to the very address it checked (urllib3 to the IP, with
the name kept for TLS and Host, so DNS cannot be switched between the check
and the connection), posts the signed JSON with a short timeout, never
follows a redirect, and logs the answer. A failure raises DeliveryFailed so
that RQ retries with the spec's backoff; the last attempt applies the
endpoint's disable rule instead (`studio.webhooks.service.record_delivery`).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass

import urllib3
from flask import Flask
from rq import get_current_job
from sqlalchemy import select

from studio import metrics, secretbox
from studio.extensions import db
from studio.media import jobs
from studio.models import Broadcast, Stream, WebhookEndpoint
from studio.redis_client import get_redis
from studio.streams import urls
from studio.webhooks import addresses, service

log = logging.getLogger(__name__)
USER_AGENT = "LiveStudio-Webhooks/1"
CANNOT_SIGN = (
    "The stored signing secret cannot be decrypted (STUDIO_TARGET_KEYS no longer has "
    "its key): delete this webhook and add it again."
)


class DeliveryFailed(Exception):
    """An attempt got no 2xx answer; RQ retries it later."""


@dataclass(frozen=True)
class Outcome:
    status_code: int | None
    error: str | None
    duration_ms: int

    refused: bool = False  # the address was not allowed: nothing was sent

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300

    @property
    def kind(self) -> str:
        return "ok" if self.ok else "refused" if self.refused else "failed"


def send(url: str, secret: str, event: dict, allowed: list, timeout: float) -> Outcome:
    """POST the signed event to `url` once; never raises for the receiver's
    failures (they are the outcome). Each checked address of the host is
    tried in turn until one accepts the connection."""
    body = json.dumps(event, separators=(",", ":")).encode()
    try:
        target = addresses.parse_url(url)
        found = addresses.resolve(target, allowed)
    except addresses.UnsafeUrl as exc:
        return Outcome(None, str(exc), 0, refused=True)
    headers = {
        "Host": target.host_header,
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "Studio-Event": str(event.get("type", "")),
        "Studio-Delivery": str(event.get("id", "")),
        service.SIGNATURE_HEADER: service.sign(secret, int(time.time()), body),
    }
    started = time.monotonic()
    error = "no address"
    for address in found:
        try:
            status = _post(target, address, body, headers, timeout)
        except urllib3.exceptions.NewConnectionError:
            error = "connection refused or unreachable"
            continue  # the next address of the name, if any
        except urllib3.exceptions.ConnectTimeoutError:
            error = f"no connection within {timeout:g} s"
            continue
        except urllib3.exceptions.ReadTimeoutError:
            error = f"no answer within {timeout:g} s"
        except urllib3.exceptions.SSLError as exc:
            error = f"TLS failed: {str(exc)[:150]}"
        except urllib3.exceptions.HTTPError as exc:
            error = f"connection failed: {type(exc).__name__}"
        else:
            elapsed = int((time.monotonic() - started) * 1000)
            redirected = "redirect not followed" if 300 <= status < 400 else None
            return Outcome(status, redirected, elapsed)
        break
    return Outcome(None, error, int((time.monotonic() - started) * 1000))


def _post(
    target: addresses.Target, address: str, body: bytes, headers: dict, timeout: float
) -> int:
    """One POST to `address` (already checked), named `target.host` for TLS
    (SNI and certificate) and Host; the status. Raises urllib3 errors."""
    limit = urllib3.Timeout(total=timeout)
    pool: urllib3.HTTPConnectionPool
    if target.scheme == "https":
        pool = urllib3.HTTPSConnectionPool(
            address,
            target.port,
            timeout=limit,
            retries=False,
            maxsize=1,
            cert_reqs="CERT_REQUIRED",
            server_hostname=target.host,
            assert_hostname=target.host,
        )
    else:
        pool = urllib3.HTTPConnectionPool(
            address, target.port, timeout=limit, retries=False, maxsize=1
        )
    try:
        response = pool.urlopen(
            "POST",
            target.path,
            body=body,
            headers=headers,
            redirect=False,
            retries=False,
            preload_content=False,
            assert_same_host=False,
        )
        response.close()  # the body is not read: the status is the answer
        return response.status
    finally:
        pool.close()


def dispatch(app: Flask, stream: str, event: dict) -> dict:
    """Queue a delivery of `event` to each subscribed endpoint of the
    stream's owner. Returns how many were queued."""
    owner_id = db.session.scalar(select(Stream.owner_id).where(Stream.public_id == stream))
    if owner_id is None:
        return {"endpoints": 0}
    endpoints = service.subscribed_endpoints(db.session, owner_id, event["type"])
    if event["type"] == "replay.ready":
        broadcast = db.session.get(Broadcast, int(event["data"]["broadcast"]["id"]))
        if broadcast is not None:
            event["data"]["replay_url"] = urls.replay_url(broadcast, app.config)
    connection = get_redis()
    for endpoint in endpoints:
        jobs.DELIVER_WEBHOOK.enqueue(connection, endpoint.id, event)
    return {"endpoints": len(endpoints)}


def deliver(app: Flask, endpoint_id: int, event: dict, *, test: bool = False) -> dict:
    """One attempt to deliver `event` to the endpoint, logged. Raises
    DeliveryFailed for RQ to retry unless this was the last attempt."""
    endpoint = db.session.get(WebhookEndpoint, endpoint_id)
    if endpoint is None:
        return {"skipped": "endpoint deleted"}
    if not endpoint.enabled and not test:
        return {"skipped": "endpoint disabled"}
    attempt, last = _attempt()
    try:
        secret = secretbox.from_config(app.config).open(endpoint.secret_encrypted)
    except secretbox.InvalidToken:
        # Sealed with a key no longer in STUDIO_TARGET_KEYS: no retry helps.
        secret, last = None, True
        outcome = Outcome(None, CANNOT_SIGN, 0)
    if secret is not None:
        outcome = send(
            endpoint.url,
            secret,
            event,
            addresses.networks(app.config.get("WEBHOOK_ALLOWED_NETWORKS", [])),
            float(app.config.get("WEBHOOK_TIMEOUT", 5.0)),
        )
    was_enabled = endpoint.enabled
    service.record_delivery(
        db.session,
        endpoint,
        event,
        attempt=attempt,
        status_code=outcome.status_code,
        error=outcome.error,
        duration_ms=outcome.duration_ms,
        last_attempt=last or test,
        disable_reason=CANNOT_SIGN if secret is None else None,
    )
    db.session.commit()
    metrics.WEBHOOK_DELIVERIES.labels(outcome.kind).inc()
    if was_enabled and not endpoint.enabled:
        metrics.WEBHOOKS_DISABLED.inc()
        log.warning("webhook endpoint %s disabled: %s", endpoint_id, endpoint.disabled_reason)
    result = {"status": outcome.status_code, "attempt": attempt, "ok": outcome.ok}
    if not outcome.ok and not (last or test):
        raise DeliveryFailed(
            f"webhook {event.get('id')} to endpoint {endpoint_id}: "
            f"{outcome.status_code or outcome.error} (attempt {attempt})"
        )
    return result


def _attempt() -> tuple[int, bool]:
    """(this attempt's number, whether it is the last) from RQ's retry state."""
    job = get_current_job()
    if job is None or not job.retry_intervals:
        return 1, True
    planned = len(jobs.DELIVER_WEBHOOK.retry_intervals)
    left = job.retries_left or 0
    return planned - left + 1, left <= 0
