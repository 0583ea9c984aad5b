"""Security wiring: rate limits (Flask-Limiter on Redis), security headers on
every response, and X-Forwarded-* headers, trusted only from the proxies in front.

Rate limits: login (per client IP and e-mail), registration (per client IP),
the JSON API (per token) and failed API authentication (per client IP).
Media-server callbacks, probes and metrics are never limited: refusing SRS a
callback would refuse a publish.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from ipaddress import IPv4Network, IPv6Network, ip_address, ip_network
from urllib.parse import urlsplit

from flask import Flask, Response, current_app, request
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from werkzeug.middleware.proxy_fix import ProxyFix

log = logging.getLogger(__name__)

EXEMPT_BLUEPRINTS = ("hooks", "health", "observability")
# Pages any site may put in an <iframe>: the embeddable player only. Every
# other page refuses to be framed (clickjacking of the creator's controls).
FRAMEABLE_ENDPOINTS = frozenset({"watch.embed"})


def init_app(app: Flask) -> None:
    """Install the limiter (after the blueprints are registered), the headers
    and ProxyFix. A limiter per app: its enabled flag and limits are per app."""
    hops = int(app.config.get("PROXY_HOPS", 0) or 0)
    if hops > 0:
        proxies = trusted_networks(app.config.get("TRUSTED_PROXIES", ()))
        app.wsgi_app = TrustedProxyFix(app.wsgi_app, proxies, hops)  # type: ignore[method-assign]
    _install_limiter(app)
    app.after_request(_security_headers)


def trusted_networks(values: Iterable[str]) -> tuple[IPv4Network | IPv6Network, ...]:
    """Addresses or networks (CIDR) of the proxies in front; raises ValueError
    naming a value that is neither."""
    networks = []
    for value in values:
        try:
            networks.append(ip_network(value, strict=False))
        except ValueError as exc:
            raise ValueError(f"STUDIO_TRUSTED_PROXIES: {value!r} is not an address") from exc
    return tuple(networks)


class TrustedProxyFix:
    """werkzeug's ProxyFix, applied only when the direct peer is one of the
    trusted proxies: anyone else reaching gunicorn directly could otherwise
    name any address in X-Forwarded-For and escape per-address limits."""

    def __init__(self, app, proxies: tuple[IPv4Network | IPv6Network, ...], hops: int):
        self.app = app
        self.proxies = proxies
        self.proxied = ProxyFix(app, x_for=hops, x_proto=hops, x_host=hops)

    def __call__(self, environ: dict, start_response):
        if self._trusted(environ.get("REMOTE_ADDR", "")):
            return self.proxied(environ, start_response)
        return self.app(environ, start_response)

    def _trusted(self, peer: str) -> bool:
        try:
            address = ip_address(peer)
        except ValueError:
            return False  # a unix socket or no peer: nothing to trust
        return any(address in network for network in self.proxies)


def _install_limiter(app: Flask) -> Limiter:
    limiter = Limiter(
        key_func=get_remote_address,
        storage_uri=app.config["REDIS_URL"],
        storage_options={"socket_timeout": 2, "socket_connect_timeout": 2},
        strategy="fixed-window",
        headers_enabled=True,
        # Redis down: serve without limits rather than refuse every login (logged).
        swallow_errors=True,
        key_prefix="studio-limits",
    )
    limiter.init_app(app)
    for name in EXEMPT_BLUEPRINTS:
        if name in app.blueprints:
            limiter.exempt(app.blueprints[name])
    _limit_view(
        app,
        limiter,
        "auth.login",
        lambda: current_app.config["RATELIMIT_LOGIN"],
        key_func=_login_key,
        error_message="Too many login attempts. Wait a minute and try again.",
    )
    _limit_view(
        app,
        limiter,
        "auth.register",
        lambda: current_app.config["RATELIMIT_REGISTER"],
        key_func=get_remote_address,
        error_message="Too many accounts created from this address. Try again later.",
    )
    if "api" in app.blueprints:
        limiter.limit(
            lambda: current_app.config["RATELIMIT_API"],
            key_func=_api_key,
            error_message="Rate limit exceeded for this API token.",
        )(app.blueprints["api"])
        # Bogus tokens each have a key of their own above: failed
        # authentications are also counted per address, and once an address
        # is over the limit it is refused before its token is looked up.
        limiter.limit(
            lambda: current_app.config["RATELIMIT_API_AUTH_FAILURES"],
            key_func=_failed_auth_key,
            deduct_when=lambda response: response.status_code == 401,
            error_message="Too many requests with an invalid API token from this address. "
            "Wait a minute and try again.",
        )(app.blueprints["api"])
    app.extensions["studio_limiter"] = limiter
    return limiter


def _limit_view(app: Flask, limiter: Limiter, endpoint: str, rate, **options) -> None:
    view = app.view_functions.get(endpoint)
    if view is None:
        log.warning("no view %s to rate-limit", endpoint)
        return
    app.view_functions[endpoint] = limiter.limit(rate, methods=["POST"], **options)(view)


def _digest(value: str) -> str:
    # Keys are stored in Redis: never the raw e-mail or token.
    return hashlib.sha256(value.encode()).hexdigest()[:32]


def _login_key() -> str:
    email = (request.form.get("email") or "").strip().lower()
    return f"{get_remote_address()}:{_digest(email)}"


def _api_key() -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return f"token:{_digest(token.strip())}"
    return f"ip:{get_remote_address()}"


def _failed_auth_key() -> str:
    return f"auth-failed:{get_remote_address()}"


def content_security_policy(app: Flask, frame_ancestors: str = "'none'") -> str:
    """The CSP: no inline script or style; media, thumbnails and fetches from
    the CDN; websockets; framed by `frame_ancestors` (by nobody, by default)."""
    cdn = _origin(app.config.get("CDN_URL", ""))
    connect = [
        "'self'",
        cdn,
        _origin(app.config.get("WHIP_URL", "")),
        _origin(app.config.get("WHEP_URL", "")),
        "wss:",
        "ws:",
    ]
    media = ["'self'", "blob:", cdn]
    images = ["'self'", "data:", cdn]
    directives = [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src " + " ".join(_unique(images)),
        "media-src " + " ".join(_unique(media)),
        "connect-src " + " ".join(_unique(connect)),
        "worker-src 'self' blob:",  # hls.js transmuxes in a blob worker
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        f"frame-ancestors {frame_ancestors}",
    ]
    return "; ".join(directives)


def _origin(url: str) -> str:
    parts = urlsplit(url or "")
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else ""


def _unique(values: list[str]) -> list[str]:
    seen: list[str] = []
    for value in values:
        if value and value not in seen:
            seen.append(value)
    return seen


def _security_headers(response: Response) -> Response:
    app = current_app
    frameable = request.endpoint in FRAMEABLE_ENDPOINTS
    key = "studio_csp_frameable" if frameable else "studio_csp"
    policy = app.extensions.get(key)
    if policy is None:
        ancestors = "*" if frameable else "'none'"
        policy = app.extensions[key] = content_security_policy(app, frame_ancestors=ancestors)
    headers = response.headers
    headers.setdefault("Content-Security-Policy", policy)
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", "strict-origin-when-cross-origin")
    # X-Frame-Options has no "any site" value: a frameable page goes without it.
    if not frameable:
        headers.setdefault("X-Frame-Options", "DENY")
    # The go-live page needs the camera and microphone; nothing else does.
    headers.setdefault("Permissions-Policy", "camera=(self), microphone=(self), geolocation=()")
    return response
