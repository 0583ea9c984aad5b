"""Settings: one typed object read from the environment (pydantic-settings).

Every setting has one environment variable (documented in the README table
and .env.example; a test checks both against `Settings`). `DATABASE_URL`,
`REDIS_URL` and `STORAGE_EMULATOR_HOST` keep their conventional names;
everything else is `STUDIO_` + the field's name in upper case. A value that
does not parse stops start-up with a `SettingsError` naming the variable.
The Flask config the app uses is derived from it by `flask_config`.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Mapping
from typing import Annotated, Literal

from cryptography.fernet import Fernet
from limits import parse_many
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    ValidationError,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class SettingsError(ValueError):
    """A setting in the environment is missing or malformed."""


def _env_name(field: str) -> str:
    return "STUDIO_" + field.upper()


def _lower(value: object) -> object:
    return value.strip().lower() if isinstance(value, str) else value


def _upper(value: object) -> object:
    return value.strip().upper() if isinstance(value, str) else value


def _rate_limit(value: str) -> str:
    parse_many(value)  # Flask-Limiter's syntax; raises ValueError when malformed
    return value


def _networks(value: str) -> str:
    for word in _words(value):
        ipaddress.ip_network(word, strict=False)  # ValueError names the bad one
    return value


def _fernet_keys(value: str) -> str:
    for word in _words(value):
        Fernet(word)  # ValueError when it is not 32 url-safe base64-encoded bytes
    return value


def _signing_key(value: str) -> str:
    if value:
        from studio.storage.signing import decode_key

        decode_key(value)  # ValueError: not base64url, or not 16 bytes
    return value


def _no_trailing_slash(value: str) -> str:
    return value.rstrip("/")


Url = Annotated[str, AfterValidator(_no_trailing_slash)]
RateLimit = Annotated[str, AfterValidator(_rate_limit)]
# A media node's id: in hook URLs, queue names, metric labels and paths.
NODE_ID_PATTERN = r"^[a-z0-9-]{1,32}$"
NodeId = Annotated[str, Field(pattern=NODE_ID_PATTERN)]
MAX_MEDIA_NODES = 1000
# A Google Cloud resource name (a URL map's), and a project id (with the
# `domain:` of older projects).
GCP_NAME_PATTERN = r"[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?"
GCP_PROJECT_PATTERN = r"[a-z][-a-z0-9.:]{4,61}[a-z0-9]"


class MediaNode(BaseModel):
    """One media node of STUDIO_MEDIA_NODES (an engine with its own HLS directory)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: NodeId
    # SRS's HTTP API, or nginx-rtmp's control/stat origin.
    api_url: Annotated[Url, Field(min_length=1, max_length=500, pattern=r"^https?://[^\s\x00]+$")]
    # The node's own ingest host name (shown to operators; the pool's one
    # address stays RTMP_URL).
    ingest_host: Annotated[str, Field(max_length=255, pattern=r"^[^\s\x00]*$")] = ""
    # Live streams it should hold; 0: no limit.
    capacity: Annotated[int, Field(ge=0, le=1_000_000)] = 0


def _json_list(value: object) -> object:
    if isinstance(value, str):
        if not value.strip():
            return []
        try:
            return json.loads(value)
        except json.JSONDecodeError as exc:
            raise ValueError(f"not JSON: {exc.msg} at character {exc.pos}") from None
    return value


def _distinct_ids(nodes: list[MediaNode]) -> list[MediaNode]:
    ids = [node.id for node in nodes]
    repeated = sorted({i for i in ids if ids.count(i) > 1})
    if repeated:
        raise ValueError(f"node ids must be distinct; repeated: {', '.join(repeated)}")
    return nodes


def _emails(value: str) -> str:
    for word in _words(value):
        if "@" not in word or len(word) > 254 or "\x00" in word:
            raise ValueError(f"not an e-mail address: {word[:60]!r}")
    return value


MediaNodes = Annotated[
    list[MediaNode],
    NoDecode,
    BeforeValidator(_json_list),
    Field(max_length=MAX_MEDIA_NODES),
    AfterValidator(_distinct_ids),
]


class Settings(BaseSettings):
    """What an operator may set; defaults suit one development machine."""

    model_config = SettingsConfigDict(
        alias_generator=_env_name, case_sensitive=True, env_ignore_empty=True, extra="ignore"
    )

    secret_key: str = ""
    database_url: str = Field("postgresql://postgres@127.0.0.1:5432/studio", alias="DATABASE_URL")
    # Off: psycopg never prepares statements (PostgreSQL plans every query),
    # for a PgBouncer in transaction mode older than 1.21 (docs/deploy.md).
    db_prepared_statements: bool = True
    redis_url: str = Field("redis://127.0.0.1:6379/0", alias="REDIS_URL")
    storage_emulator_host: str = Field("", alias="STORAGE_EMULATOR_HOST")
    # Token SRS / nginx-rtmp must put in the hook URL query (?token=...).
    hook_token: str = ""
    # Public HTTPS origin of the studio (pages, WHIP proxy, websockets).
    public_url: Url = "http://127.0.0.1:5000"
    # RTMP ingest base as OBS needs it: rtmp://{ingest host}/live
    rtmp_url: Url = "rtmp://127.0.0.1:1935/live"
    # The HTTPS origin where nginx passes SRS's WebRTC endpoints (WHIP, the
    # SDK's /rtc/v1/publish/, WHEP): the base of every WebRTC URL handed out.
    # Empty: PUBLIC_URL; `make dev`: its HTTPS site (gunicorn's plain port
    # has no /rtc/v1/ at all).
    webrtc_origin: Url = ""
    # Host (and optional port) the SRS WebRTC SDK talks to; default: the origin's.
    webrtc_host: str = ""
    cdn_url: Url = "http://127.0.0.1:8081"
    gcs_bucket: str = "studio-media"
    # Private streams' objects (under private/); empty: GCS_BUCKET. In
    # production a bucket without public access (docs/cdn.md).
    gcs_private_bucket: str = ""
    # Cloud CDN signed cookies for private streams: the key's name and value
    # (base64url, 16 bytes) as added to the backend bucket; how long a
    # cookie lasts (players renew it at half-life); its Domain (empty: the
    # studio's host only; production: the parent domain of studio and CDN).
    cdn_signing_key_name: str = ""
    cdn_signing_key: Annotated[str, AfterValidator(_signing_key)] = ""
    cdn_cookie_ttl: Annotated[int, Field(ge=30, le=86400)] = 600
    cdn_cookie_domain: str = ""
    # Invalidate a stream's cached objects on Cloud CDN (Compute API
    # urlMaps.invalidateCache) when it becomes private or is deleted
    # (docs/cdn.md); the load balancer's URL map, its project (empty: the
    # credentials'), and the Compute API's base URL.
    cdn_invalidate: bool = False
    cdn_url_map: Annotated[str, Field(pattern=f"^{GCP_NAME_PATTERN}$")] = "studio-cdn"
    gcp_project: Annotated[str, Field(pattern=f"^(?:{GCP_PROJECT_PATTERN})?$")] = ""
    compute_api_url: Annotated[Url, Field(pattern=r"^https?://[^\s\x00/]+$")] = (
        "https://compute.googleapis.com"
    )
    # Local directory the media engine writes HLS into (never a bucket mount).
    hls_dir: str = "var/hls"
    hls_fragment: PositiveFloat = 2.0
    # A `.ts.tmp` or ended stream's playlist untouched this long (and at least
    # five fragments) is left over from a killed engine: the sync removes it.
    hls_leftover_seconds: PositiveFloat = 30.0
    media_engine: Annotated[Literal["nginx-rtmp", "srs"], BeforeValidator(_lower)] = "nginx-rtmp"
    srs_api_url: Url = "http://127.0.0.1:1985"
    nginx_control_url: Url = "http://127.0.0.1:8080"
    # The pool of media nodes (JSON list of {"id", "api_url", "ingest_host",
    # "capacity"}); empty: one node `default` at SRS_API_URL or
    # NGINX_CONTROL_URL (studio.media.nodes).
    media_nodes: MediaNodes = []
    # On a media node's own processes (upload workers, watcher): the node they serve.
    node_id: NodeId = "default"
    # E-mail addresses of the operators (space/comma separated): they see /ops/.
    operators: Annotated[str, AfterValidator(_emails)] = ""
    # Empty: Secure cookies exactly when PUBLIC_URL is https.
    secure_cookies: bool | None = None
    log_level: Annotated[
        Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"], BeforeValidator(_upper)
    ] = "INFO"
    log_format: Annotated[Literal["json", "text"], BeforeValidator(_lower)] = "json"
    ws_ping_interval: PositiveFloat = 25.0
    # Live viewer counts (studio.live.viewers): each socket process re-marks
    # its open watch sockets this often; a mark older than the expiry (a
    # closed socket, a killed process) no longer counts. Pages get the count
    # at most every push interval per stream.
    viewer_heartbeat: PositiveFloat = 10.0
    viewer_expiry: PositiveFloat = 30.0
    viewer_push_interval: PositiveFloat = 2.0
    # Where the websocket ingest's ffmpeg publishes; default: RTMP_URL.
    ingest_rtmp_url: Url = ""
    # SRT ingest as encoders need it: srt://{ingest host}:10080 (SRS only);
    # default: RTMP_URL's host on port 10080.
    srt_url: Url = ""
    # Multistream: where the relays read a live stream back from the engine
    # (default: INGEST_RTMP_URL), targets per stream, the longest wait
    # between retries of a failing target (s), and the Fernet keys that
    # encrypt target keys at rest (space/comma separated, the first encrypts,
    # all decrypt; empty: derived from SECRET_KEY).
    rtmp_playback_url: Url = ""
    max_targets: PositiveInt = 5
    target_retry_max: PositiveFloat = 30.0
    target_keys: Annotated[str, AfterValidator(_fernet_keys)] = ""
    # Whether a target may be on a loopback, private or link-local address
    # (development and tests); off, a relay never connects inside the network.
    target_allow_private: bool = False
    # Empty: {PUBLIC_URL}/rtc/v1/whip/ (nginx proxies it to SRS).
    whip_url: str = ""
    whip_ice_timeout: PositiveFloat = 5.0
    # WebRTC playback (WHEP, on engines that offer it). Empty URL:
    # {WEBRTC_ORIGIN}/rtc/v1/whep/ (nginx proxies it to SRS); the watch page
    # posts to its own origin. A stream's watch page starts in WebRTC while
    # the stream has fewer viewers than the maximum (0: never, HLS only); a
    # WebRTC start that has no picture within the timeout falls back to HLS.
    whep_url: str = ""
    whep_max_viewers: NonNegativeInt = 50
    whep_timeout: PositiveFloat = 5.0
    stun_urls: str = ""
    turn_urls: str = ""
    turn_secret: str = ""
    turn_ttl: PositiveInt = 3600
    # Cost guard: live streams per creator, longest broadcast (s); 0 = no limit.
    max_live_per_user: NonNegativeInt = 3
    max_broadcast_seconds: NonNegativeInt = 43200
    reconcile_grace_seconds: NonNegativeFloat = 30.0
    reconcile_interval: PositiveFloat = 15.0
    # Longest wait between reconcile attempts while Redis or PostgreSQL is down.
    reconcile_backoff_max: PositiveFloat = 30.0
    ratelimit_login: RateLimit = "10 per minute"
    ratelimit_register: RateLimit = "20 per hour"
    ratelimit_api: RateLimit = "600 per minute"
    # API requests with a missing or invalid token, per client address.
    ratelimit_api_auth_failures: RateLimit = "30 per minute"
    # TURN credentials handed out (viewers' and creators' ice-servers), per
    # client address: each is a relay any holder can use until it expires.
    ratelimit_ice: RateLimit = "30 per minute"
    # Chat (studio.chat.limits): messages per participant of a stream, per
    # client address (all its participants and streams), and sockets opened
    # per client address.
    chat_rate_participant: RateLimit = "5 per 10 seconds"
    chat_rate_address: RateLimit = "20 per 10 seconds"
    chat_join_rate_address: RateLimit = "60 per minute"
    # A login lasts this many seconds without use (studio.auth.sessions).
    session_ttl: PositiveInt = 7 * 24 * 3600
    # Reverse proxies in front of gunicorn whose X-Forwarded-* are trusted:
    # how many, and the addresses/networks they connect from (a request from
    # any other peer keeps its own address; its headers are ignored).
    proxy_hops: NonNegativeInt = 0
    trusted_proxies: Annotated[str, AfterValidator(_networks)] = "127.0.0.1 ::1"
    # Parallel uploads in one group pass (up to 16 streams: their segments,
    # then their playlists); seconds between HLS sweeps.
    upload_threads: PositiveInt = 8
    sweep_interval: PositiveFloat = 3.0
    # Webhooks: networks a webhook URL may point into although they are
    # private, loopback or link-local (refused otherwise), and how long one
    # delivery may take (connect and answer), in seconds.
    webhook_allowed_networks: Annotated[str, AfterValidator(_networks)] = ""
    webhook_timeout: Annotated[float, Field(gt=0, le=30)] = 5.0


class _FromMapping(Settings):
    """Settings from an explicit mapping only (tests, tools), never os.environ."""

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, **_others):
        return (init_settings,)


def environment_variables() -> set[str]:
    """Every environment variable `Settings` reads."""
    return {field.alias for field in Settings.model_fields.values()}


def load(environ: Mapping[str, str] | None = None) -> Settings:
    """Settings from the process environment, or from `environ` alone.

    Raises SettingsError naming each variable that does not parse.
    """
    try:
        if environ is None:
            return Settings()
        known = environment_variables()
        return _FromMapping(**{k: v for k, v in environ.items() if k in known and v != ""})
    except ValidationError as exc:
        raise SettingsError(_explain(exc)) from None


def _explain(exc: ValidationError) -> str:
    problems = []
    for error in exc.errors():
        name = str(error["loc"][0]) if error["loc"] else "settings"
        hidden = any(word in name for word in ("SECRET", "TOKEN", "KEYS", "SIGNING_KEY"))
        shown = "" if hidden else f" (got {_shortened(repr(error['input']))})"
        # Where inside a structured value (STUDIO_MEDIA_NODES[1].id).
        where = "".join(
            f"[{part}]" if isinstance(part, int) else f".{part}" for part in error["loc"][1:]
        )
        problems.append(f"{name}{where}: {error['msg']}{shown}")
    if len(problems) > 5:
        problems[5:] = [f"and {len(problems) - 5} more"]
    return "invalid settings: " + "; ".join(problems)


def _shortened(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} characters)"


def from_environ(environ: Mapping[str, str] | None = None) -> dict:
    """The Flask config mapping, from the environment (or `environ`)."""
    return flask_config(load(environ))


def flask_config(settings: Settings) -> dict:
    """The Flask config the app reads (keys as the app has always used them)."""
    webrtc_origin = settings.webrtc_origin or settings.public_url
    secure = settings.secure_cookies
    if secure is None:
        secure = settings.public_url.startswith("https://")
    return {
        "SECRET_KEY": settings.secret_key,
        "SQLALCHEMY_DATABASE_URI": sqlalchemy_url(settings.database_url),
        # No pool_pre_ping: connections idle for a while are pinged instead
        # (studio.database), not every checkout. psycopg prepares a statement
        # run 5 times on a connection, unless told not to.
        "SQLALCHEMY_ENGINE_OPTIONS": engine_options(settings),
        "REDIS_URL": settings.redis_url,
        "HOOK_TOKEN": settings.hook_token,
        "PUBLIC_URL": settings.public_url,
        "RTMP_URL": settings.rtmp_url,
        "WEBRTC_ORIGIN": webrtc_origin,
        "WEBRTC_HOST": settings.webrtc_host or _host_of(webrtc_origin),
        "CDN_URL": settings.cdn_url,
        "GCS_BUCKET": settings.gcs_bucket,
        "GCS_PRIVATE_BUCKET": settings.gcs_private_bucket,
        "CDN_SIGNING_KEY_NAME": settings.cdn_signing_key_name,
        "CDN_SIGNING_KEY": settings.cdn_signing_key,
        "CDN_COOKIE_TTL": settings.cdn_cookie_ttl,
        "CDN_COOKIE_DOMAIN": settings.cdn_cookie_domain,
        "CDN_INVALIDATE": settings.cdn_invalidate,
        "CDN_URL_MAP": settings.cdn_url_map,
        "GCP_PROJECT": settings.gcp_project,
        "COMPUTE_API_URL": settings.compute_api_url,
        "STORAGE_EMULATOR_HOST": settings.storage_emulator_host,
        "HLS_DIR": settings.hls_dir,
        "HLS_FRAGMENT": settings.hls_fragment,
        "HLS_LEFTOVER_SECONDS": settings.hls_leftover_seconds,
        "MEDIA_ENGINE": settings.media_engine,
        "SRS_API_URL": settings.srs_api_url,
        "NGINX_CONTROL_URL": settings.nginx_control_url,
        # Only the configured pool; empty means the one implicit node `default`
        # (studio.media.nodes.configured).
        "MEDIA_NODES": [node.model_dump() for node in settings.media_nodes],
        # The implicit node's API URL: the chosen engine's.
        "ENGINE_API_URL": (
            settings.srs_api_url if settings.media_engine == "srs" else settings.nginx_control_url
        ),
        "NODE_ID": settings.node_id,
        "OPERATORS": [email.lower() for email in _words(settings.operators)],
        "SESSION_COOKIE_SECURE": secure,
        "REMEMBER_COOKIE_SECURE": secure,
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "REMEMBER_COOKIE_HTTPONLY": True,
        "SESSION_TTL": settings.session_ttl,
        "WTF_CSRF_TIME_LIMIT": None,
        "LOG_LEVEL": settings.log_level,
        # Request bodies are small JSON/forms; anything bigger is refused with 413.
        "MAX_CONTENT_LENGTH": 1024 * 1024,
        # Every websocket is pinged this often (seconds); a client that misses a
        # pong is dropped, so a vanished browser does not keep a worker thread.
        "SOCK_SERVER_OPTIONS": {"ping_interval": settings.ws_ping_interval},
        "VIEWER_HEARTBEAT": settings.viewer_heartbeat,
        "VIEWER_EXPIRY": settings.viewer_expiry,
        "VIEWER_PUSH_INTERVAL": settings.viewer_push_interval,
        "INGEST_RTMP_URL": settings.ingest_rtmp_url or settings.rtmp_url,
        "SRT_URL": settings.srt_url or f"srt://{_host_of(settings.rtmp_url).split(':')[0]}:10080",
        "RTMP_PLAYBACK_URL": (
            settings.rtmp_playback_url or settings.ingest_rtmp_url or settings.rtmp_url
        ),
        "MAX_TARGETS": settings.max_targets,
        "TARGET_RETRY_MAX": settings.target_retry_max,
        "TARGET_KEYS": _words(settings.target_keys),
        "TARGET_ALLOW_PRIVATE": settings.target_allow_private,
        "WHIP_URL": settings.whip_url,
        "WHIP_ICE_TIMEOUT": settings.whip_ice_timeout,
        "WHEP_URL": settings.whep_url,
        "WHEP_MAX_VIEWERS": settings.whep_max_viewers,
        "WHEP_TIMEOUT": settings.whep_timeout,
        "STUN_URLS": _words(settings.stun_urls),
        "TURN_URLS": _words(settings.turn_urls),
        "TURN_SECRET": settings.turn_secret,
        "TURN_TTL": settings.turn_ttl,
        "MAX_LIVE_PER_USER": settings.max_live_per_user,
        "MAX_BROADCAST_SECONDS": settings.max_broadcast_seconds,
        "RECONCILE_GRACE_SECONDS": settings.reconcile_grace_seconds,
        "RECONCILE_INTERVAL": settings.reconcile_interval,
        "RECONCILE_BACKOFF_MAX": settings.reconcile_backoff_max,
        "RATELIMIT_LOGIN": settings.ratelimit_login,
        "RATELIMIT_REGISTER": settings.ratelimit_register,
        "RATELIMIT_API": settings.ratelimit_api,
        "RATELIMIT_API_AUTH_FAILURES": settings.ratelimit_api_auth_failures,
        "RATELIMIT_ICE": settings.ratelimit_ice,
        "CHAT_RATE_PARTICIPANT": settings.chat_rate_participant,
        "CHAT_RATE_ADDRESS": settings.chat_rate_address,
        "CHAT_JOIN_RATE_ADDRESS": settings.chat_join_rate_address,
        "PROXY_HOPS": settings.proxy_hops,
        "TRUSTED_PROXIES": _words(settings.trusted_proxies),
        "UPLOAD_THREADS": settings.upload_threads,
        "SWEEP_INTERVAL": settings.sweep_interval,
        "WEBHOOK_ALLOWED_NETWORKS": _words(settings.webhook_allowed_networks),
        "WEBHOOK_TIMEOUT": settings.webhook_timeout,
    }


def engine_options(settings: Settings) -> dict:
    """SQLAlchemy's engine options for DATABASE_URL."""
    if settings.db_prepared_statements:
        return {}
    return {"connect_args": {"prepare_threshold": None}}


def sqlalchemy_url(database_url: str) -> str:
    """DATABASE_URL as SQLAlchemy needs it: the driver named (psycopg 3)."""
    for scheme in ("postgresql://", "postgres://"):
        if database_url.startswith(scheme):
            return "postgresql+psycopg://" + database_url[len(scheme) :]
    return database_url


def _words(value: str) -> list[str]:
    """A list setting: words separated by commas and/or spaces."""
    return value.replace(",", " ").split()


def _host_of(url: str) -> str:
    return url.split("://", 1)[-1].split("/", 1)[0]


def testing(overrides: Mapping[str, object] | None = None) -> dict:
    """Config for the test suite: environment values plus test defaults."""
    config = from_environ()
    config.update(
        TESTING=True,
        SECRET_KEY="test-secret-key",  # noqa: S106 (test-only values)
        HOOK_TOKEN="test-hook-token",  # noqa: S106
        CDN_SIGNING_KEY_NAME="test-key",
        CDN_SIGNING_KEY="dGVzdC1jZG4ta2V5LTE2Qg==",  # noqa: S106 (16 bytes)
        WTF_CSRF_ENABLED=True,
        # Tests log in far more often than a person; tests/test_security.py enables it.
        RATELIMIT_ENABLED=False,
    )
    config.update(overrides or {})
    return config
