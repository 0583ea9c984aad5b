"""Viewer pages: the home page for visitors, a stream's watch page, its
replays, and the embeddable player. Nothing here needs a login, and nothing
here may show a secret (stream key, share token): pages carry only public ids
and CDN URLs.

A private stream is shown only to a viewer `grants.allowed` lets in; to
anyone else every page of it is the plain 404 page (its existence is not
revealed). Its pages set the signed CDN cookie its player needs."""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from datetime import datetime

from flask import (
    Blueprint,
    abort,
    current_app,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)

from studio import viewers
from studio.errors import NotFound
from studio.extensions import db
from studio.media import engines, ice
from studio.models import Broadcast, Stream
from studio.storage import signing
from studio.streams import access, service, urls
from studio.watch import catalog, grants

bp = Blueprint("watch", __name__)


@bp.app_template_filter("duration")
def duration_filter(seconds: float | None) -> str:
    return catalog.format_duration(seconds)


@bp.app_template_filter("iso")
def iso_filter(moment: datetime | None) -> str:
    return moment.isoformat() if moment else ""


@dataclass(frozen=True)
class Replay:
    """An ended broadcast as viewers see it."""

    broadcast: Broadcast
    url: str | None  # the VOD playlist; None while it is being written
    page_url: str
    thumbnail_url: str | None
    duration: float | None


def _stream_or_404(public_id: str) -> Stream:
    """The stream, if this viewer may watch it; else 404 (a private stream
    looks exactly like one that does not exist)."""
    try:
        stream = service.get_public_stream(db.session, public_id)
    except NotFound:
        abort(404)
    if not grants.allowed(stream):
        abort(404)
    return stream


def _signed(page: str, stream: Stream, status: int = 200):
    """A page of `stream` with its signed CDN cookie (private streams) and
    never cached by a shared cache (it may carry that cookie)."""
    reply = current_app.make_response((page, status))
    if stream.private:
        try:
            grants.sign(reply, stream)
        except signing.SigningNotConfigured:
            current_app.logger.error("private stream %s: no CDN signing key", stream.public_id)
        reply.headers["Cache-Control"] = "private, no-store"
    return reply


def _replays(broadcasts: list[Broadcast]) -> list[Replay]:
    """Ended broadcasts with their replay URL, page, thumbnail and duration."""
    config = current_app.config
    ended = [b for b in broadcasts if b.ended_at]
    durations = catalog.replay_durations(db.session, (b.id for b in ended))
    return [
        Replay(
            broadcast=b,
            url=urls.replay_url(b, config),
            page_url=urls.replay_page_url(b, config),
            thumbnail_url=urls.broadcast_thumbnail_url(b, config),
            duration=durations.get(b.id),
        )
        for b in ended
    ]


def _player(stream: Stream) -> dict:
    """What the stream player (watch page and embed) is rendered with: HLS,
    and WebRTC (WHEP) where the engine plays it, with whether this viewer
    starts in it (fewer viewers than STUDIO_WHEP_MAX_VIEWERS)."""
    config = current_app.config
    live = None
    if stream.status in ("live", "reconnecting"):
        live = service.open_broadcast(db.session, stream)
    playback = urls.playback(stream, config, engines.current().playback_protocols)
    count = viewers.count(current_app, stream.public_id)
    whep = None
    if playback["whep_url"]:
        whep = {
            # Empty: the page's own origin (nginx proxies /rtc/v1/whep/ to SRS).
            "base": config.get("WHEP_URL") or "",
            "url": playback["whep_url"],
            "ice_url": url_for("watch.ice_servers", public_id=stream.public_id),
            "max_viewers": config["WHEP_MAX_VIEWERS"],
            "timeout": config["WHEP_TIMEOUT"],
            "auto": urls.starts_in_webrtc(count, config),
        }
    return {
        "stream": stream,
        "live_broadcast": live,
        "hls_url": playback["hls_url"],
        # hls.js keeps its distance from the live edge in fragments.
        "hls_fragment": config["HLS_FRAGMENT"],
        "whep": whep,
        "thumbnail_url": urls.thumbnail_url(stream, config),
        "watch_url": urls.watch_url(stream, config),
        "viewers": count,
    }


@bp.get("/")
def home():
    """What is live now, the most watched first (with each stream's audience),
    and recent replays, for anyone."""
    config = current_app.config
    on_now = catalog.live_now(db.session)
    audience = viewers.counts(current_app, [stream.public_id for stream, _ in on_now])
    # The most watched first; among equals, the newest (the query's order: a stable sort).
    on_now.sort(key=lambda item: -audience[item[0].public_id])
    live = [
        {
            "stream": stream,
            "broadcast": broadcast,
            "thumbnail_url": urls.thumbnail_url(stream, config),
            "viewers": audience[stream.public_id],
        }
        for stream, broadcast in on_now[: catalog.HOME_LIVE_LIMIT]
    ]
    return render_template(
        "watch/home.html", live=live, replays=_replays(catalog.recent_replays(db.session))
    )


@bp.get("/watch/<public_id>")
def watch(public_id: str):
    """The watch page. `?share=TOKEN` (a share link) lets its holder in: the
    token is kept in their session and the page redirects to the plain URL,
    so the secret never stays in the address bar, history or a Referer."""
    if "share" in request.args:
        return _open_share_link(public_id, request.args.get("share", ""))
    stream = _stream_or_404(public_id)
    page = render_template(
        "watch/watch.html",
        **_player(stream),
        replays=_replays(service.list_broadcasts(db.session, stream)),
    )
    return _signed(page, stream)


def _open_share_link(public_id: str, token: str):
    try:
        stream = service.get_public_stream(db.session, public_id)
    except NotFound:
        abort(404)
    valid = access.share_token_valid(db.session, stream, token)
    if stream.private and not valid:
        abort(404)  # revoked or made up: the same as no stream at all
    if valid:  # kept even while not private: it lets its holder in once it is
        grants.remember_share(stream.public_id, token)
    reply = redirect(url_for("watch.watch", public_id=stream.public_id))
    reply.headers["Cache-Control"] = "no-store"
    return reply


@bp.get("/watch/<public_id>/access")
def playback_access(public_id: str):
    """The player's playback URL, with a fresh signed CDN cookie for a
    private stream; players call it at half the cookie's life and after a
    playback error (a change of visibility moves the stream's objects)."""
    stream = _stream_or_404(public_id)
    config = current_app.config
    body: dict = {"hls_url": urls.hls_url(stream, config), "private": stream.private}
    reply = current_app.response_class(mimetype="application/json")
    reply.headers["Cache-Control"] = "private, no-store"
    if stream.private:
        try:
            expires = grants.sign(reply, stream)
        except signing.SigningNotConfigured:
            return jsonify(error="Private playback is not configured on this server."), 503
        body.update(expires=expires, renew_in=max(10, int(config["CDN_COOKIE_TTL"]) // 2))
    reply.set_data(json.dumps(body))
    return reply


@bp.get("/watch/<public_id>/replays")
def replays(public_id: str):
    """The list of past broadcasts, re-fetched live by the watch page."""
    stream = _stream_or_404(public_id)
    page = render_template(
        "watch/_replays.html", replays=_replays(service.list_broadcasts(db.session, stream))
    )
    reply = _signed(page, stream)
    reply.headers["Cache-Control"] = "no-store"
    return reply


@bp.get("/watch/<public_id>/replays/<int:broadcast_id>")
def replay(public_id: str, broadcast_id: int):
    """One broadcast's replay, played from its start (404 for a broadcast of
    another stream, or one still live)."""
    stream = _stream_or_404(public_id)
    broadcast = db.session.get(Broadcast, broadcast_id)
    if broadcast is None or broadcast.stream_id != stream.id or broadcast.ended_at is None:
        abort(404)
    (item,) = _replays([broadcast])
    page = render_template(
        "watch/replay.html",
        stream=stream,
        replay=item,
        watch_url=urls.watch_url(stream, current_app.config),
    )
    return _signed(page, stream)


@bp.get("/watch/<public_id>/ice-servers")
def ice_servers(public_id: str):
    """STUN/TURN for a viewer playing the stream over WebRTC: TURN credentials
    of their own (username `{expiry}:viewer-{random}`), valid STUDIO_TURN_TTL.
    404 where the engine has no WebRTC playback."""
    stream = _stream_or_404(public_id)
    config = current_app.config
    if not urls.playback(stream, config, engines.current().playback_protocols)["whep_url"]:
        abort(404)
    label = "viewer-" + secrets.token_hex(6)
    reply = jsonify(iceServers=ice.ice_servers(config, label), ttl=config["TURN_TTL"])
    reply.headers["Cache-Control"] = "no-store"
    return reply


@bp.get("/embed/<public_id>")
def embed(public_id: str):
    """The player alone, for an <iframe> on any site (see security.FRAMEABLE).
    A private stream's embed obeys the watch page's rule: it plays only for a
    viewer whose studio session lets them in (the owner, a share-link holder),
    which browsers send to a frame only on the studio's own site."""
    stream = _stream_or_404(public_id)
    page = render_template(
        "watch/embed.html",
        **_player(stream),
        replays=_replays(service.list_broadcasts(db.session, stream, limit=1)),
    )
    return _signed(page, stream)
