"""Turn SRS 5 and nginx-rtmp callback bodies into one `Callback` shape.

Field formats follow srs5-contract.md §1.5–1.7 (RTMP `param` is `?secret=...`,
WHIP `param` is `app=...&stream=...&secret=...`, `tcUrl` empty for WHIP).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import parse_qs

SRS_ACTIONS = {
    "on_connect",
    "on_close",
    "on_publish",
    "on_unpublish",
    "on_play",
    "on_stop",
    "on_dvr",
    "on_hls",
}
# Fields each SRS event must carry (beyond action and client_id) for us to act on it.
SRS_REQUIRED = {
    "on_publish": ("app", "stream", "param"),
    "on_unpublish": ("app", "stream"),
    "on_hls": ("app", "stream", "file", "m3u8", "seq_no", "duration"),
}
NGINX_CALLS = {"publish": "on_publish", "publish_done": "on_unpublish"}
NGINX_SERVER_ID = "nginx-rtmp"
# Longest value of each field stored on a broadcast (studio.models.Broadcast):
# SRS ids are a few characters, but a longer one must be refused, not truncated.
MAX_LENGTHS = {"client_id": 64, "server_id": 64, "service_id": 64, "ip": 64}
# nginx-rtmp's form names of the same fields.
NGINX_FIELDS = {"clientid": "client_id", "addr": "ip"}


class CallbackError(ValueError):
    """The callback body is malformed; the message says what is wrong."""


@dataclass(frozen=True)
class Callback:
    action: str
    client_id: str
    app: str = ""
    stream: str = ""
    secret: str = ""
    # A publish ticket of the studio's ingest relay (instead of the secret).
    ticket: str = ""
    protocol: str = "rtmp"
    server_id: str = ""
    service_id: str = ""
    ip: str = ""
    # on_hls only
    file: str = ""
    m3u8: str = ""
    seq_no: int = 0
    duration: float = 0.0


def _string(body: Mapping, key: str) -> str:
    value = body.get(key)
    if not isinstance(value, str):
        raise CallbackError(f"Field '{key}' is required and must be a string.")
    return _bounded(key, value)


def _optional_string(body: Mapping, key: str) -> str:
    value = body.get(key, "")
    if not isinstance(value, str):
        raise CallbackError(f"Field '{key}' must be a string.")
    return _bounded(key, value)


def _bounded(key: str, value: str) -> str:
    limit = MAX_LENGTHS.get(NGINX_FIELDS.get(key, key))
    if limit is not None and len(value) > limit:
        raise CallbackError(f"Field '{key}' is longer than {limit} characters.")
    return value


def secret_from_param(param: str, name: str = "secret") -> str:
    """The `secret` (or `name`) query value of an SRS `param` ('' when absent)."""
    values = parse_qs(param.lstrip("?"), keep_blank_values=True).get(name, [""])
    return values[0]


def srs_protocol(tc_url: str, param: str) -> str:
    """RTMP publishes carry an rtmp:// tcUrl; WHIP sends '', the legacy RTC API webrtc://.
    The studio's own websocket relay publishes RTMP with `ingest=websocket`."""
    if tc_url.startswith("webrtc://") or tc_url == "" or "upstream=rtc" in param:
        return "webrtc"
    if parse_qs(param.lstrip("?")).get("ingest") == ["websocket"]:
        return "websocket"
    return "rtmp"


def srs_callback(body: Mapping) -> Callback:
    """Validate an SRS 5 callback body; raises CallbackError."""
    action = _string(body, "action")
    if action not in SRS_ACTIONS:
        raise CallbackError(f"Unknown action '{action}'.")
    client_id = _string(body, "client_id")
    if not client_id:
        raise CallbackError("Field 'client_id' must not be empty.")
    for key in SRS_REQUIRED.get(action, ()):
        if key not in body:
            raise CallbackError(f"Field '{key}' is required for {action}.")
    param = _optional_string(body, "param")
    tc_url = _optional_string(body, "tcUrl")
    fields = dict(
        action=action,
        client_id=client_id,
        app=_optional_string(body, "app"),
        stream=_optional_string(body, "stream"),
        secret=secret_from_param(param),
        ticket=secret_from_param(param, "ticket"),
        protocol=srs_protocol(tc_url, param),
        server_id=_optional_string(body, "server_id"),
        service_id=_optional_string(body, "service_id"),
        ip=_optional_string(body, "ip"),
    )
    if action == "on_hls":
        fields.update(_hls_fields(body))
    return Callback(**fields)


def _hls_fields(body: Mapping) -> dict:
    seq_no, duration = body.get("seq_no"), body.get("duration")
    if not isinstance(seq_no, int) or isinstance(seq_no, bool) or seq_no < 0:
        raise CallbackError("Field 'seq_no' must be a non-negative integer.")
    if not isinstance(duration, int | float) or isinstance(duration, bool) or duration < 0:
        raise CallbackError("Field 'duration' must be a non-negative number.")
    return {
        "file": _string(body, "file"),
        "m3u8": _string(body, "m3u8"),
        "seq_no": seq_no,
        "duration": float(duration),
    }


def nginx_callback(form: Mapping) -> Callback:
    """Validate an nginx-rtmp `on_publish`/`on_publish_done` form; raises CallbackError."""
    call = form.get("call", "")
    if call not in NGINX_CALLS:
        raise CallbackError(f"Unknown call '{call}'.")
    for key in ("name", "clientid", "app"):
        if not form.get(key):
            raise CallbackError(f"Field '{key}' is required.")
    return Callback(
        action=NGINX_CALLS[call],
        client_id=_bounded("clientid", form["clientid"]),
        app=form["app"],
        stream=form["name"],
        secret=form.get("secret", ""),
        ticket=form.get("ticket", ""),
        protocol="websocket" if form.get("ingest") == "websocket" else "rtmp",
        server_id=NGINX_SERVER_ID,
        ip=_bounded("addr", form.get("addr", "")),
    )
