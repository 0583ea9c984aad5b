"""The go-live page: a creator publishes from the browser (WebRTC/WHIP when
the engine speaks it, the websocket ingest otherwise), and the ICE servers
that page needs. Routes live on the streams blueprint (owner only)."""

from __future__ import annotations

from flask import current_app, jsonify, render_template, url_for
from flask_login import current_user

from studio import viewers
from studio.media import engines, ice
from studio.streams.views import _owned, bp


@bp.get("/streams/<public_id>/live")
def golive(public_id: str):
    stream = _owned(public_id)
    config = current_app.config
    return render_template(
        "streams/golive.html",
        stream=stream,
        engine=engines.current().name,
        # WHIP where the engine takes WebRTC; the websocket ingest otherwise.
        whip="webrtc" in engines.current().ingest_protocols,
        ice_timeout=config["WHIP_ICE_TIMEOUT"],
        # Empty: WHIP on the page's own origin (nginx proxies it to SRS), so the
        # page works under whichever name the creator opened it.
        whip_base=config.get("WHIP_URL") or "",
        key_url=url_for("streams.key", public_id=stream.public_id),
        ice_url=url_for("streams.ice_servers", public_id=stream.public_id),
        ingest_path=f"/ws/ingest/{stream.public_id}",
        viewers=viewers.count(current_app, stream.public_id),
    )


@bp.get("/streams/<public_id>/ice-servers")
def ice_servers(public_id: str):
    """STUN/TURN for this creator; TURN credentials expire after STUDIO_TURN_TTL."""
    _owned(public_id)
    config = current_app.config
    reply = jsonify(iceServers=ice.ice_servers(config, current_user.id), ttl=config["TURN_TTL"])
    reply.headers["Cache-Control"] = "no-store"
    return reply
