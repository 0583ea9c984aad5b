"""The pool of media nodes: which nodes exist, which take new publishers,
how many live streams each holds.

A media node is one engine (SRS or nginx-rtmp) with its own HLS directory
and the upload workers beside it. The studio is the control plane: nodes
come from STUDIO_MEDIA_NODES (`sync`, at start-up and lazily when a callback
names a configured node not in the table) or from an operator (`add`); a
draining node refuses new publishers while its live streams run to their
end. A stream's `node_id` names the node holding its broadcast (set on an
accepted publish, cleared when the broadcast ends: `studio.streams`).

Without STUDIO_MEDIA_NODES there is one node, `default`, at the engine's
API URL: a single machine works as it always did.

Like the other services these functions take a session and plain values,
raise domain errors and never commit; no Flask here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from studio.errors import NotFound, StudioError, ValidationError
from studio.models import MediaNode, Stream, utcnow

DEFAULT_NODE = "default"
NODE_ID_RE = re.compile(r"[a-z0-9-]{1,32}")
API_URL_MAX = 500
INGEST_HOST_MAX = 255
CAPACITY_MAX = 1_000_000
LIVE_STATUSES = ("live", "reconnecting")
# An engine's API origin as the proxy's node map may hold it: scheme, host
# name or [IPv6] address, port; nothing nginx would read as syntax.
PROXY_ORIGIN_RE = re.compile(
    r"https?://(?:[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?"
)
# Words the proxy's `map` block (nginx) reads as its own parameters unless escaped.
PROXY_MAP_WORDS = ("default", "hostnames", "include", "volatile")


class UnknownNode(NotFound):
    """No media node has this id."""


class NodeDraining(StudioError):
    """The node is draining: it takes no new publisher."""

    status = 409


class NodeBusy(StudioError):
    """The node still holds live streams (it cannot be removed yet)."""

    status = 409


@dataclass(frozen=True)
class NodeView:
    """A node as operators, the health route and the metrics see it."""

    id: str
    api_url: str
    ingest_host: str
    capacity: int
    draining: bool
    live: int
    last_seen_at: datetime | None

    @property
    def full(self) -> bool:
        return self.capacity > 0 and self.live >= self.capacity

    def as_dict(self) -> dict:
        return {
            "node": self.id,
            "draining": self.draining,
            "live": self.live,
            "capacity": self.capacity,
        }


def configured(config: Mapping) -> list[dict]:
    """The nodes the settings name: STUDIO_MEDIA_NODES, or else the one
    implicit node `default` at the engine's API URL (no capacity limit)."""
    if config.get("MEDIA_NODES"):
        return list(config["MEDIA_NODES"])
    api_url = config["ENGINE_API_URL"]
    return [{"id": DEFAULT_NODE, "api_url": api_url, "ingest_host": "", "capacity": 0}]


def clean_node_id(value: object) -> str:
    """A node id as given in a hook URL, the CLI or a setting: 1-32 characters
    of `a-z`, `0-9`, `-`. Raises ValidationError (the value is not echoed
    when it is long or unprintable)."""
    if not isinstance(value, str) or not NODE_ID_RE.fullmatch(value):
        shown = repr(value) if isinstance(value, str) and value.isprintable() else "given"
        if isinstance(value, str) and len(value) > 40:
            shown = f"of {len(value)} characters"
        raise ValidationError(
            "Invalid node id.",
            {"node": f"The id {shown} is not 1-32 characters of a-z, 0-9 and '-'."},
        )
    return value


def clean_api_url(value: object) -> str:
    """An engine API origin: http(s)://host[:port][/path], printable, at most
    500 characters; a trailing slash is dropped. Raises ValidationError."""
    ok = (
        isinstance(value, str)
        and len(value) <= API_URL_MAX
        and re.fullmatch(r"https?://[!-~]+", value) is not None
    )
    if not ok:
        raise ValidationError(
            "Invalid node.", {"api_url": "An http(s):// URL of at most 500 characters."}
        )
    return value.rstrip("/")


def clean_ingest_host(value: object) -> str:
    """A host name (optionally with a port), or empty. Raises ValidationError."""
    ok = (
        isinstance(value, str)
        and len(value) <= INGEST_HOST_MAX
        and re.fullmatch(r"[A-Za-z0-9.:\[\]-]*", value) is not None
    )
    if not ok:
        raise ValidationError(
            "Invalid node.", {"ingest_host": "A host name of at most 255 characters."}
        )
    return value


def clean_capacity(value: object) -> int:
    """Live streams a node should hold, 0 (no limit) .. 1,000,000."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= CAPACITY_MAX:
        raise ValidationError(
            "Invalid node.", {"capacity": f"A whole number from 0 to {CAPACITY_MAX}."}
        )
    return value


def sync(session: Session, configured: Iterable[Mapping]) -> list[MediaNode]:
    """Upsert the configured nodes (STUDIO_MEDIA_NODES, or the implicit
    `default`): a new one is added, a known one takes the configured API
    URL, ingest host and capacity and keeps its draining flag. Nodes added by
    an operator are left alone. Raises ValidationError on a malformed entry."""
    rows = []
    for entry in configured:
        node_id = clean_node_id(entry.get("id"))
        values = {
            "api_url": clean_api_url(entry.get("api_url")),
            "ingest_host": clean_ingest_host(entry.get("ingest_host", "")),
            "capacity": clean_capacity(entry.get("capacity", 0)),
        }
        # One statement, so that two callbacks naming a new node at once
        # cannot both try to insert it.
        session.execute(
            insert(MediaNode)
            .values(id=node_id, draining=False, created_at=utcnow(), **values)
            .on_conflict_do_update(index_elements=[MediaNode.id], set_=values)
        )
        rows.append(node_id)
    session.expire_all()  # rows loaded before see the new values
    return [session.get(MediaNode, node_id) for node_id in rows]


def resolve(session: Session, node_id: object, configured: Iterable[Mapping]) -> MediaNode:
    """The node a callback names (missing: `default`). A configured node not
    yet in the table is added on the way. Raises ValidationError for a
    malformed id, UnknownNode for one neither in the table nor configured."""
    node_id = DEFAULT_NODE if node_id is None else clean_node_id(node_id)
    node = session.get(MediaNode, node_id)
    if node is not None:
        return node
    entry = next((e for e in configured if e.get("id") == node_id), None)
    if entry is None:
        raise UnknownNode(f"Unknown media node '{node_id}'.")
    return sync(session, [entry])[0]


def get(session: Session, node_id: object) -> MediaNode:
    """A node by id; raises ValidationError or UnknownNode."""
    node = session.get(MediaNode, clean_node_id(node_id))
    if node is None:
        raise UnknownNode(f"Unknown media node '{node_id}'.")
    return node


def add(
    session: Session, node_id: object, api_url: object, ingest_host: object = "", capacity=0
) -> MediaNode:
    """Add a node by hand (an operator); raises ValidationError for bad
    values or an id already taken."""
    node_id = clean_node_id(node_id)
    values = {
        "api_url": clean_api_url(api_url),
        "ingest_host": clean_ingest_host(ingest_host),
        "capacity": clean_capacity(capacity),
    }
    if session.get(MediaNode, node_id) is not None:
        raise ValidationError("Invalid node.", {"node": f"A node '{node_id}' exists already."})
    node = MediaNode(id=node_id, draining=False, created_at=utcnow(), **values)
    session.add(node)
    session.flush()
    return node


def set_draining(session: Session, node_id: object, draining: bool) -> MediaNode:
    """Drain a node (it refuses new publishers, its health answers 503) or
    take it back. Raises ValidationError or UnknownNode."""
    node = get(session, node_id)
    node.draining = draining
    session.flush()
    return node


def remove(session: Session, node_id: object) -> None:
    """Remove a node that holds no live stream. Raises ValidationError,
    UnknownNode, or NodeBusy (drain it and wait for its live count to reach 0)."""
    node = get(session, node_id)
    live = live_counts(session).get(node.id, 0)
    if live:
        raise NodeBusy(f"Node '{node.id}' still holds {live} live stream(s); drain it first.")
    session.delete(node)
    session.flush()


def check_accepts_publish(
    session: Session, node_id: str, configured: Iterable[Mapping], draining: bool | None
) -> None:
    """Whether the node a publish callback names (`node_id`, already
    cleaned) takes new publishers, given its row's `draining` flag as the
    publish control read it (with the stream's lock; None: no row): raises
    NodeDraining when it is draining. A configured node not yet in the
    table is added on the way, as by `resolve` (which raises UnknownNode for
    a node neither in the table nor configured)."""
    if draining is None:
        draining = resolve(session, node_id, configured).draining
    if draining:
        raise NodeDraining(f"media node '{node_id}' is draining")


def live_counts(session: Session) -> dict[str, int]:
    """Live (and reconnecting) streams per node id."""
    rows = session.execute(
        select(Stream.node_id, func.count(Stream.id))
        .where(Stream.status.in_(LIVE_STATUSES), Stream.node_id.is_not(None))
        .group_by(Stream.node_id)
    )
    return {node_id: count for node_id, count in rows}


def listing(session: Session) -> list[NodeView]:
    """Every node with its live count, by id."""
    counts = live_counts(session)
    nodes = session.scalars(select(MediaNode).order_by(MediaNode.id))
    return [_view(node, counts.get(node.id, 0)) for node in nodes]


def view(session: Session, node_id: object) -> NodeView:
    """One node with its live count; raises ValidationError or UnknownNode."""
    node = get(session, node_id)
    return _view(node, live_counts(session).get(node.id, 0))


def pick(session: Session) -> MediaNode | None:
    """The node a new publisher should go to: not draining, not full, the
    fewest live streams for its capacity (ties: by id). None if none is."""
    best = None
    for node in listing(session):
        if node.draining or node.full:
            continue
        load = node.live / node.capacity if node.capacity else 0.0
        if best is None or load < best[0]:
            best = (load, node.id)
    return session.get(MediaNode, best[1]) if best else None


def is_up(node: NodeView, now: datetime, max_age: float) -> bool:
    """Whether the node's engine answered the reconciler in the last
    `max_age` seconds (never answered: not up)."""
    seen = node.last_seen_at
    return seen is not None and (now - seen).total_seconds() <= max_age


def up_max_age(config: Mapping) -> float:
    """How old a node's last answer may be for it to count as up: a few
    reconcile intervals, and at least the grace period."""
    interval = float(config.get("RECONCILE_INTERVAL", 15))
    return max(3 * interval, float(config.get("RECONCILE_GRACE_SECONDS", 30)))


def mark_seen(session: Session, node_ids: Iterable[str], when: datetime | None = None) -> None:
    """Record that these nodes' engines answered (the reconciler)."""
    when = when or utcnow()
    for node_id in node_ids:
        node = session.get(MediaNode, node_id)
        if node is not None:
            node.last_seen_at = when
    session.flush()


def live_streams_on(session: Session, node_id: str) -> list[Stream]:
    """The live and reconnecting streams a node holds."""
    return list(
        session.scalars(
            select(Stream).where(Stream.node_id == node_id, Stream.status.in_(LIVE_STATUSES))
        )
    )


def proxy_map(session: Session, configured: Iterable[Mapping]) -> str:
    """The body of nginx's `map $arg_node ...` (deploy/nginx/studio.conf):
    one `<id> <api origin>;` line per node, the configured ones (as the next
    sync would store them) and those in the table, by id. Draining nodes are
    in it: their live streams still have viewers. Raises ValidationError,
    naming the node, when an id or API URL is not plainly safe to write into
    nginx's configuration (an API URL must be an origin: no path, query,
    user or quote)."""
    origins = {node.id: node.api_url for node in session.scalars(select(MediaNode))}
    for entry in configured:
        origins[clean_node_id(entry.get("id"))] = entry.get("api_url")
    lines = [
        "# Media node id -> its engine's API origin, written by `flask nodes`: the",
        "# proxy sends WebRTC requests with ?node=<id> there (docs/deploy.md).",
    ]
    for node_id in sorted(origins):
        clean_node_id(node_id)
        origin = origins[node_id]
        if not isinstance(origin, str) or not PROXY_ORIGIN_RE.fullmatch(origin.rstrip("/")):
            raise ValidationError(
                "Invalid node.",
                {"api_url": f"Node '{node_id}': the API URL must be http(s)://host[:port]."},
            )
        key = f"\\{node_id}" if node_id in PROXY_MAP_WORDS else node_id
        lines.append(f"{key} {origin.rstrip('/')};")
    return "\n".join(lines) + "\n"


def _view(node: MediaNode, live: int) -> NodeView:
    return NodeView(
        id=node.id,
        api_url=node.api_url,
        ingest_host=node.ingest_host,
        capacity=node.capacity,
        draining=node.draining,
        live=live,
        last_seen_at=node.last_seen_at,
    )
