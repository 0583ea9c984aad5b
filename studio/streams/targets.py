"""Multistream targets: where a stream's broadcasts are relayed (YouTube,
Twitch, Facebook or any RTMP/RTMPS server).

Like `studio.streams.service`, these functions take a session and plain
values, raise domain errors, announce changes as domain events and never
commit. A target's key is sealed by a `SecretBox` (`studio.secretbox`) the
caller passes in; only its last characters stay readable, for display.
The relay process (`workers/multistream.py`) reads the targets of live
streams and reports each relay's state through `record_state`.
"""

from __future__ import annotations

import ipaddress
import unicodedata
from dataclasses import dataclass
from functools import partial
from typing import Protocol
from urllib.parse import urlsplit

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from studio.core import events
from studio.errors import NotFound, ValidationError
from studio.models import TARGET_STATES, Stream, Target, utcnow

NAME_MAX = 80
URL_MAX = 500
KEY_MAX = 500
ERROR_MAX = 500
KEY_HINT_LENGTH = 4
SCHEMES = ("rtmp", "rtmps")


@dataclass(frozen=True)
class Preset:
    """A well-known service: its ingest URL (the key comes from the service)."""

    name: str
    url: str


# The ingest URLs the services publish for encoders (RTMPS where offered;
# Facebook Live takes RTMPS only).
PRESETS = {
    "youtube": Preset("YouTube", "rtmps://a.rtmps.youtube.com:443/live2"),
    "twitch": Preset("Twitch", "rtmp://live.twitch.tv/app"),
    "facebook": Preset("Facebook", "rtmps://live-api-s.facebook.com:443/rtmp"),
}


class Sealer(Protocol):
    """Encrypts a secret for storage (`studio.secretbox.SecretBox`)."""

    def seal(self, secret: str) -> bytes: ...

    def open(self, sealed: bytes) -> str: ...


def _has_control(value: str) -> bool:
    return any(unicodedata.category(c)[0] == "C" for c in value)


def clean_name(name: object) -> str:
    """A target's label; raises ValidationError."""
    if not isinstance(name, str) or not name.strip():
        raise ValidationError("Invalid target.", {"name": "A name is required."})
    name = name.strip()
    if len(name) > NAME_MAX or _has_control(name):
        raise ValidationError(
            "Invalid target.", {"name": f"At most {NAME_MAX} printable characters."}
        )
    return name


def clean_url(url: object, *, allow_private: bool = False) -> str:
    """An `rtmp://` or `rtmps://` server URL with a host (no credentials, no
    spaces, no fragment) that is not a loopback, private or link-local
    address unless `allow_private` (TARGET_ALLOW_PRIVATE); raises
    ValidationError. A host name is checked when the relay connects
    (`workers.relays.private_address_problem`): what it resolves to may change."""
    problem = _url_problem(url) or (None if allow_private else _local_host_problem(str(url)))
    if problem:
        raise ValidationError("Invalid target.", {"url": problem})
    return str(url).strip().rstrip("/")


def _local_host_problem(url: str) -> str | None:
    host = urlsplit(url.strip()).hostname or ""
    try:
        local = not ipaddress.ip_address(host).is_global
    except ValueError:  # a name
        local = host == "localhost" or host.endswith(".localhost")
    if local:
        return f"{host} is a private or local address: targets must be on the internet."
    return None


def _url_problem(url: object) -> str | None:
    if not isinstance(url, str) or not url.strip():
        return "A server URL is required."
    url = url.strip()
    if len(url) > URL_MAX:
        return f"At most {URL_MAX} characters."
    if _has_control(url) or any(c.isspace() for c in url):
        return "No spaces or control characters."
    try:
        parts = urlsplit(url)
        port = parts.port  # ValueError when it is not a number in range
    except ValueError:
        return "Not a valid URL."
    if parts.scheme.lower() not in SCHEMES:
        return "Use an rtmp:// or rtmps:// URL."
    if not parts.hostname:
        return "The URL needs a host."
    if parts.username is not None or parts.password is not None:
        return "No user name or password in the URL: put the secret in the key."
    if parts.fragment or url.endswith("#"):
        return "No '#' fragment in the URL."
    if port == 0:
        return "Not a valid port."
    return None


def clean_key(key: object) -> str:
    """A stream key as the service gives it; raises ValidationError."""
    if not isinstance(key, str) or not key.strip():
        raise ValidationError("Invalid target.", {"key": "A stream key is required."})
    key = key.strip()
    if len(key) > KEY_MAX:
        raise ValidationError("Invalid target.", {"key": f"At most {KEY_MAX} characters."})
    if _has_control(key) or any(c.isspace() for c in key):
        raise ValidationError("Invalid target.", {"key": "No spaces or control characters."})
    return key


def key_hint(key: str) -> str:
    """The last characters of a key (all a page or the API ever shows of it)."""
    return key[-KEY_HINT_LENGTH:] if len(key) > KEY_HINT_LENGTH * 2 else ""


def list_targets(session: Session, stream: Stream) -> list[Target]:
    """The stream's targets, oldest first."""
    query = select(Target).where(Target.stream_id == stream.id).order_by(Target.id)
    return list(session.scalars(query))


def get_target(session: Session, stream: Stream, target_id: int) -> Target:
    """One of the stream's targets; raises NotFound (also for another stream's)."""
    target = session.scalar(
        select(Target).where(Target.id == target_id, Target.stream_id == stream.id)
    )
    if target is None:
        raise NotFound("Target not found.")
    return target


def add_target(
    session: Session,
    stream: Stream,
    box: Sealer,
    *,
    name: object,
    url: object,
    key: object,
    enabled: bool = True,
    limit: int = 5,
    allow_private: bool = False,
) -> Target:
    """Add a target to the stream (relayed at once if the stream is live and
    the target enabled). Raises ValidationError on bad input (`clean_url`:
    `allow_private`) or when the stream already has `limit` targets."""
    fields = {}
    values = {}
    for field, clean, value in (
        ("name", clean_name, name),
        ("url", partial(clean_url, allow_private=allow_private), url),
        ("key", clean_key, key),
    ):
        try:
            values[field] = clean(value)
        except ValidationError as exc:
            fields.update(exc.fields)
    if fields:
        raise ValidationError("Invalid target.", fields)
    # The stream row is locked so two requests cannot both slip under the limit.
    session.execute(select(Stream.id).where(Stream.id == stream.id).with_for_update())
    count = session.scalar(select(func.count(Target.id)).where(Target.stream_id == stream.id))
    if count >= limit:
        raise ValidationError(f"A stream has at most {limit} targets.", {})
    target = Target(
        stream=stream,
        name=values["name"],
        url=values["url"],
        key_encrypted=box.seal(values["key"]),
        key_hint=key_hint(values["key"]),
        enabled=bool(enabled),
        state="stopped",
    )
    session.add(target)
    session.flush()
    events.raise_event(session, events.TargetsChanged(stream.public_id))
    return target


def update_target(
    session: Session,
    target: Target,
    box: Sealer,
    changes: dict[str, object],
    *,
    allow_private: bool = False,
) -> Target:
    """Change any of a target's name, url, key and enabled flag. Enabling it
    while the stream is live starts its relay, disabling stops it; a new URL
    or key restarts it. Raises ValidationError (`clean_url`: `allow_private`)."""
    fields = {}
    url = partial(clean_url, allow_private=allow_private)
    cleaners = {"name": clean_name, "url": url, "key": clean_key}
    values = {}
    for field, value in changes.items():
        if field in cleaners:
            try:
                values[field] = cleaners[field](value)
            except ValidationError as exc:
                fields.update(exc.fields)
        elif field == "enabled":
            if not isinstance(value, bool):
                fields["enabled"] = "Must be true or false."
            values[field] = value
        else:
            fields[field] = "Unknown field."
    if fields:
        raise ValidationError("Invalid target.", fields)
    if "name" in values:
        target.name = values["name"]
    if "url" in values:
        target.url = values["url"]
    if "key" in values:
        target.key_encrypted = box.seal(values["key"])
        target.key_hint = key_hint(values["key"])
    if "enabled" in values:
        target.enabled = values["enabled"]
    events.raise_event(session, events.TargetsChanged(target.stream.public_id))
    return target


def delete_target(session: Session, target: Target) -> None:
    """Remove a target; its relay, if running, stops."""
    events.raise_event(session, events.TargetsChanged(target.stream.public_id))
    session.delete(target)


# --- the relay process's side -------------------------------------------------


@dataclass(frozen=True)
class Relay:
    """What a relay needs to push a live stream to one target."""

    target_id: int
    stream: str
    name: str
    url: str
    key: str  # a secret: never logged, never shown

    @property
    def destination(self) -> str:
        """`{url}/{key}`: the RTMP URL the relay publishes to (a secret)."""
        return f"{self.url}/{self.key}"

    def redact(self, text: str) -> str:
        """`text` (an ffmpeg message, say) without the key in it."""
        return text.replace(self.key, "****") if self.key else text

    def __repr__(self) -> str:  # never the key
        return f"Relay(target_id={self.target_id}, stream={self.stream!r}, url={self.url!r})"


def relays_due(session: Session, box: Sealer) -> list[Relay]:
    """A relay for each enabled target of each live stream. A target whose
    key no configured key opens is left out (and reported as retrying)."""
    rows = session.execute(
        select(Target, Stream.public_id)
        .join(Stream, Target.stream_id == Stream.id)
        .where(Stream.status == "live", Stream.disabled.is_(False), Target.enabled.is_(True))
        .order_by(Target.id)
    ).all()
    relays = []
    for target, public_id in rows:
        try:
            key = box.open(target.key_encrypted)
        except Exception:  # noqa: BLE001 (InvalidToken: the encryption keys changed)
            problem = "The stored key cannot be decrypted: enter it again."
            record_state(session, target.id, "retrying", problem)
            continue
        relays.append(Relay(target.id, public_id, target.name, target.url, key))
    return relays


def record_state(
    session: Session, target_id: int, state: str, error: str | None = None
) -> Target | None:
    """Store a relay's state (and its last error, kept until the next one);
    announce it, and a `TargetFailed` when a target starts failing. None if
    the target is gone."""
    if state not in TARGET_STATES:
        raise ValueError(f"unknown target state {state!r}")
    target = session.get(Target, target_id, with_for_update=True)
    if target is None:
        return None
    previous = target.state
    error = error[:ERROR_MAX] if error is not None else None
    if previous == state and error in (None, target.last_error):
        return target  # nothing new: no event (the relay process hears of each)
    if error is not None:
        target.last_error = error
    target.state = state
    target.state_changed_at = utcnow()
    public_id = target.stream.public_id
    events.raise_event(
        session, events.TargetStateChanged(public_id, target.id, state, target.last_error)
    )
    if state == "retrying" and previous != "retrying":
        events.raise_event(
            session,
            events.TargetFailed(public_id, target.id, target.name, target.last_error or ""),
        )
    return target


def stop_others(session: Session, running: set[int]) -> list[int]:
    """Mark every target not in `running` that is not `stopped` as stopped (after
    a relay process restart, or when its stream ended); their ids."""
    query = select(Target.id).where(Target.state != "stopped")
    if running:
        query = query.where(Target.id.not_in(running))
    ids = list(session.scalars(query))
    for target_id in ids:
        record_state(session, target_id, "stopped")
    return ids
