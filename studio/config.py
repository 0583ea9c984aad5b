"""Settings, read from the environment when the app is created.

Every setting has one environment variable (documented in the README table).
`DATABASE_URL`, `REDIS_URL` and `STORAGE_EMULATOR_HOST` keep their conventional
names; everything else uses the `STUDIO_` prefix.
"""

from __future__ import annotations

import os
from collections.abc import Mapping


def _flag(value: str | None, default: bool) -> bool:
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def from_environ(environ: Mapping[str, str] | None = None) -> dict:
    """Build the Flask config mapping from environment variables."""
    env = os.environ if environ is None else environ
    public_url = env.get("STUDIO_PUBLIC_URL", "http://127.0.0.1:5000").rstrip("/")
    return {
        "SECRET_KEY": env.get("STUDIO_SECRET_KEY", ""),
        "SQLALCHEMY_DATABASE_URI": sqlalchemy_url(
            env.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/studio")
        ),
        "SQLALCHEMY_ENGINE_OPTIONS": {"pool_pre_ping": True},
        "REDIS_URL": env.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
        # Token SRS / nginx-rtmp must put in the hook URL query (?token=...).
        "HOOK_TOKEN": env.get("STUDIO_HOOK_TOKEN", ""),
        # Public HTTPS origin of the studio (pages, WHIP proxy, websockets).
        "PUBLIC_URL": public_url,
        # RTMP ingest base as OBS needs it: rtmp://{ingest host}/live
        "RTMP_URL": env.get("STUDIO_RTMP_URL", "rtmp://127.0.0.1:1935/live").rstrip("/"),
        # Host (and optional port) the SRS WebRTC SDK should talk to.
        "WEBRTC_HOST": env.get("STUDIO_WEBRTC_HOST", _host_of(public_url)),
        # Base URL of the CDN in front of the bucket.
        "CDN_URL": env.get("STUDIO_CDN_URL", "http://127.0.0.1:8081").rstrip("/"),
        "GCS_BUCKET": env.get("STUDIO_GCS_BUCKET", "studio-media"),
        "STORAGE_EMULATOR_HOST": env.get("STORAGE_EMULATOR_HOST", ""),
        # Local directory the media engine writes HLS into (never a bucket mount).
        "HLS_DIR": env.get("STUDIO_HLS_DIR", "var/hls"),
        "HLS_FRAGMENT": float(env.get("STUDIO_HLS_FRAGMENT", "2")),
        # "nginx-rtmp" (bare metal, development, tests) or "srs" (production).
        "MEDIA_ENGINE": env.get("STUDIO_MEDIA_ENGINE", "nginx-rtmp"),
        "SRS_API_URL": env.get("STUDIO_SRS_API_URL", "http://127.0.0.1:1985").rstrip("/"),
        "NGINX_CONTROL_URL": env.get("STUDIO_NGINX_CONTROL_URL", "http://127.0.0.1:8080").rstrip(
            "/"
        ),
        # Secure cookies whenever the public origin is HTTPS (override: STUDIO_SECURE_COOKIES).
        "SESSION_COOKIE_SECURE": _flag(
            env.get("STUDIO_SECURE_COOKIES"), public_url.startswith("https://")
        ),
        "REMEMBER_COOKIE_SECURE": _flag(
            env.get("STUDIO_SECURE_COOKIES"), public_url.startswith("https://")
        ),
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "REMEMBER_COOKIE_HTTPONLY": True,
        # A login lasts this many seconds without use (studio.auth.sessions).
        "SESSION_TTL": int(env.get("STUDIO_SESSION_TTL", str(7 * 24 * 3600))),
        "WTF_CSRF_TIME_LIMIT": None,
        "LOG_LEVEL": env.get("STUDIO_LOG_LEVEL", "INFO"),
        # Request bodies are small JSON/forms; anything bigger is refused with 413.
        "MAX_CONTENT_LENGTH": 1024 * 1024,
        # Every websocket is pinged this often (seconds); a client that misses a
        # pong is dropped, so a vanished browser does not keep a worker thread.
        "SOCK_SERVER_OPTIONS": {"ping_interval": float(env.get("STUDIO_WS_PING_INTERVAL", "25"))},
        # Browser go-live: where the websocket ingest's ffmpeg publishes (RTMP,
        # reachable from the web servers), the WHIP endpoint pages post to,
        # and ICE servers (TURN credentials use coturn's use-auth-secret).
        "INGEST_RTMP_URL": env.get(
            "STUDIO_INGEST_RTMP_URL", env.get("STUDIO_RTMP_URL", "rtmp://127.0.0.1:1935/live")
        ).rstrip("/"),
        # Empty: {PUBLIC_URL}/rtc/v1/whip/ (nginx proxies it to SRS).
        "WHIP_URL": env.get("STUDIO_WHIP_URL", ""),
        "WHIP_ICE_TIMEOUT": float(env.get("STUDIO_WHIP_ICE_TIMEOUT", "5")),
        "STUN_URLS": _words(env.get("STUDIO_STUN_URLS", "")),
        "TURN_URLS": _words(env.get("STUDIO_TURN_URLS", "")),
        "TURN_SECRET": env.get("STUDIO_TURN_SECRET", ""),
        "TURN_TTL": int(env.get("STUDIO_TURN_TTL", "3600")),
        # Cost guard: concurrent live streams per creator and longest broadcast
        # (seconds); 0 turns a limit off.
        "MAX_LIVE_PER_USER": int(env.get("STUDIO_MAX_LIVE_PER_USER", "3")),
        "MAX_BROADCAST_SECONDS": int(env.get("STUDIO_MAX_BROADCAST_SECONDS", "43200")),
        # Reconciler: how long a live stream may be missing from the engine
        # before it is ended, and how often a pass runs.
        "RECONCILE_GRACE_SECONDS": float(env.get("STUDIO_RECONCILE_GRACE_SECONDS", "30")),
        "RECONCILE_INTERVAL": float(env.get("STUDIO_RECONCILE_INTERVAL", "15")),
        # Rate limits (Flask-Limiter syntax), counted in Redis.
        "RATELIMIT_LOGIN": env.get("STUDIO_RATELIMIT_LOGIN", "10 per minute"),
        "RATELIMIT_REGISTER": env.get("STUDIO_RATELIMIT_REGISTER", "20 per hour"),
        "RATELIMIT_API": env.get("STUDIO_RATELIMIT_API", "600 per minute"),
        # API requests with a missing or invalid token, per client address.
        "RATELIMIT_API_AUTH_FAILURES": env.get(
            "STUDIO_RATELIMIT_API_AUTH_FAILURES", "30 per minute"
        ),
        # Reverse proxies in front of gunicorn whose X-Forwarded-* are trusted:
        # how many, and the addresses/networks they connect from (a request
        # from any other peer keeps its own address; its headers are ignored).
        "PROXY_HOPS": int(env.get("STUDIO_PROXY_HOPS", "0")),
        "TRUSTED_PROXIES": _words(env.get("STUDIO_TRUSTED_PROXIES", "127.0.0.1 ::1")),
    }


def sqlalchemy_url(database_url: str) -> str:
    """DATABASE_URL as SQLAlchemy needs it: the driver is psycopg2 (SQLAlchemy 2.1
    would otherwise pick psycopg 3 for a bare postgresql:// URL)."""
    for scheme in ("postgresql://", "postgres://"):
        if database_url.startswith(scheme):
            return "postgresql+psycopg2://" + database_url[len(scheme) :]
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
        WTF_CSRF_ENABLED=True,
        # Tests log in far more often than a person; tests/ops enable it.
        RATELIMIT_ENABLED=False,
    )
    config.update(overrides or {})
    return config
