"""Security wiring: rate limits (Flask-Limiter on Redis), security headers on
every response, and X-Forwarded-* headers, trusted only from the proxies in front.

Rate limits: login (per client IP and e-mail), registration (per client IP),
TURN credentials (per client IP), the JSON API (per token) and failed API
authentication (per client IP).
Media-server callbacks, probes and metrics are never limited: refusing SRS a
callback would refuse a publish.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import time
from collections.abc import Callable, Iterable
from ipaddress import IPv4Network, IPv6Network, ip_address, ip_network
from urllib.parse import urlsplit

import redis
from flask import Flask, Response, current_app, g, request
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from limits import RateLimitItem, parse_many
from werkzeug.datastructures import Headers
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
    for endpoint in ("watch.ice_servers", "streams.ice_servers"):
        _limit_view(
            app,
            limiter,
            endpoint,
            lambda: current_app.config["RATELIMIT_ICE"],
            methods=("GET",),
            key_func=get_remote_address,
            shared="ice-servers",  # one budget per address across both views
            error_message="Too many requests for relay credentials. Wait a minute.",
        )
    if "api" in app.blueprints:
        # The API's limits cost one Redis round trip per call (`_limit_api`),
        # where Flask-Limiter's two limits and headers cost four.
        limiter.exempt(app.blueprints["api"])
        # The API's own hook, first among the blueprint's (after the app's:
        # the input guard, CSRF); no other request pays for it.
        app.before_request_funcs.setdefault("api", []).insert(0, _limit_api)
        app.after_request(_count_failed_auth)
    _skip_limiter_for_exempt(app, limiter)
    app.extensions["studio_limiter"] = limiter
    return limiter


def _skip_limiter_for_exempt(app: Flask, limiter: Limiter) -> None:
    """Flask-Limiter's hooks run around every request, also for the
    blueprints it has just been told to exempt, where they only work out
    that nothing applies and set up and clear a per-request context (about
    a tenth of a millisecond of CPU per API call, callback and probe).
    Those requests skip them: its check before the view, its headers after
    it, its context's reset at teardown."""
    if not limiter.enabled:
        return  # RATELIMIT_ENABLED off: Flask-Limiter installs no hooks at all
    exempt = {name for name in (*EXEMPT_BLUEPRINTS, "api") if name in app.blueprints}

    check = limiter._check_request_limit
    inject_headers = _limiter_hook(app.after_request_funcs, "__inject_headers")
    release_context = _limiter_hook(app.teardown_request_funcs, "__release_context")

    def unless_exempt(hook: Callable, name: str) -> Callable:
        """`hook` for requests outside the exempt blueprints; for those, its
        argument back (an after-request hook's response) or nothing."""

        def hook_unless_exempt(*args):
            if request.blueprint not in exempt:
                return hook(*args)
            return args[0] if args else None

        hook_unless_exempt.__name__ = f"{name}_unless_exempt"
        return hook_unless_exempt

    for registry, hook, name in (
        (app.before_request_funcs, check, "check"),
        (app.after_request_funcs, inject_headers, "headers"),
        (app.teardown_request_funcs, release_context, "release"),
    ):
        funcs = registry.setdefault(None, [])
        if hook not in funcs:  # another Flask-Limiter version: its hook is left alone
            log.warning("a Flask-Limiter hook not found; it runs for every request")
            continue
        funcs[funcs.index(hook)] = unless_exempt(hook, name)


def _limiter_hook(registry: dict, name: str) -> Callable | None:
    """Flask-Limiter's app-wide hook whose function is named `name`, if any
    (its after-request hook is a partial, its teardown a bound method)."""
    for hook in registry.get(None, []):
        func = getattr(hook, "func", hook)
        if getattr(func, "__name__", "") == name:
            return hook
    return None


# One call per API request. KEYS: the address's windows of failed
# authentications, then the token's windows. ARGV[1]: how many of KEYS are
# failure windows; ARGV[1 + i]: the limit of KEYS[i]; ARGV[1 + #KEYS + i]:
# its window in seconds. An address over a failure limit is refused first
# ({-i, ttl}) and its token not counted; else each token window is counted
# and read back: {used, ttl, used, ttl, ...}.
_API_LIMIT_SCRIPT = """
local failures = tonumber(ARGV[1])
local n = #KEYS
for i = 1, failures do
  local used = tonumber(redis.call('GET', KEYS[i]) or '0')
  if used >= tonumber(ARGV[1 + i]) then
    return {-i, redis.call('TTL', KEYS[i])}
  end
end
local reply = {}
for i = failures + 1, n do
  local used = redis.call('INCR', KEYS[i])
  if used == 1 then
    redis.call('EXPIRE', KEYS[i], ARGV[1 + n + i])
  end
  reply[#reply + 1] = used
  reply[#reply + 1] = redis.call('TTL', KEYS[i])
end
return reply
"""
_API_LIMITED = "Rate limit exceeded for this API token."
_AUTH_FAILURES_LIMITED = (
    "Too many requests with an invalid API token from this address. Wait a minute and try again."
)


def _api_limits_on() -> bool:
    limiter = current_app.extensions.get("studio_limiter")
    return (
        bool(limiter and limiter.enabled) and request.blueprint == "api" and bool(request.endpoint)
    )


@functools.lru_cache(maxsize=16)
def _windows(setting: str) -> tuple[RateLimitItem, ...]:
    # A limit setting ("600 per minute; 10000 per day") parsed once, not on
    # every API call; keyed by its text, so a changed setting is parsed anew.
    return tuple(parse_many(setting))


def _failure_windows() -> list[tuple[RateLimitItem, str]]:
    items = _windows(current_app.config["RATELIMIT_API_AUTH_FAILURES"])
    return [(item, item.key_for("studio-limits", "api", _failed_auth_key())) for item in items]


def _limit_api() -> Response | None:
    """Count an API call against its token (per address without one) and
    refuse it with a JSON 429 over RATELIMIT_API, or before its token is
    looked up when its address is over RATELIMIT_API_AUTH_FAILURES. Sets the
    X-RateLimit-* headers of the tightest window. Redis down: served (logged)."""
    if not _api_limits_on():
        return None
    from studio.api.errors import error_reply

    failures = _failure_windows()
    tokens = [
        (item, item.key_for("studio-limits", "api", _api_key()))
        for item in _windows(current_app.config["RATELIMIT_API"])
    ]
    windows = failures + tokens
    args = [len(failures)] + [item.amount for item, _ in windows]
    args += [item.get_expiry() for item, _ in windows]
    try:
        reply, g.api_reads = _call_limits([key for _, key in windows], args)
    except redis.RedisError:
        log.warning("API rate limit not checked (Redis unavailable)", exc_info=True)
        return None
    if reply and reply[0] < 0:
        return error_reply(429, _AUTH_FAILURES_LIMITED, headers={"Retry-After": _seconds(reply[1])})
    counted = [
        (item, used, ttl)
        for (item, _), used, ttl in zip(tokens, reply[::2], reply[1::2], strict=True)
    ]
    if not counted:
        return None
    # The window to report: one that refused the call, else the one with the fewest left.
    item, used, ttl = min(counted, key=lambda c: (c[1] <= c[0].amount, c[0].amount - c[1]))
    g.api_rate_limit_headers = {
        "X-RateLimit-Limit": str(item.amount),
        "X-RateLimit-Remaining": str(max(0, item.amount - used)),
        "X-RateLimit-Reset": str(int(time.time() + max(ttl, 0)) + 1),
    }
    if used > item.amount:
        return error_reply(429, _API_LIMITED, headers={"Retry-After": _seconds(ttl)})
    return None


# Redis reads an API view will need, sent in the same round trip as the
# rate-limit call: endpoint -> a function queuing them on a pipeline (it
# reads the request's view_args). Their replies are in `api_reads()`.
_READS_WITH_LIMITS: dict[str, Callable[[redis.client.Pipeline], None]] = {}


def read_with_limits(endpoint: str, queue: Callable[[redis.client.Pipeline], None]) -> None:
    """Send what `queue` puts on a pipeline with every rate-limit call of `endpoint`."""
    _READS_WITH_LIMITS[endpoint] = queue


def api_reads() -> list | None:
    """The replies of this request's `read_with_limits` reads (an exception
    in place of a failed one), or None when they were not sent (limits off,
    Redis unavailable, a request refused first): read them yourself then."""
    return g.get("api_reads")


def _call_limits(keys: list[str], args: list) -> tuple[list, list]:
    """The limit script's reply and the endpoint's reads, one round trip."""
    from studio.redis_client import get_redis

    queue = _READS_WITH_LIMITS.get(request.endpoint or "")
    for attempt in range(2):
        pipeline = get_redis().pipeline(transaction=False)
        pipeline.evalsha(_api_limit_sha(reload=attempt > 0), len(keys), *keys, *args)
        if queue is not None:
            queue(pipeline)
        replies = pipeline.execute(raise_on_error=False)
        reply = replies[0]
        if isinstance(reply, redis.exceptions.NoScriptError) and attempt == 0:
            continue  # Redis restarted or flushed its scripts: load it again
        if isinstance(reply, Exception):
            raise reply
        return reply, replies[1:]
    raise AssertionError("unreachable")


def _api_limit_sha(reload: bool = False) -> str:
    """The script's SHA1, loaded once per app (EVALSHA: its text is sent once)."""
    from studio.redis_client import get_redis

    sha = current_app.extensions.get("studio_api_limit_sha")
    if sha is None or reload:
        sha = get_redis().script_load(_API_LIMIT_SCRIPT)
        current_app.extensions["studio_api_limit_sha"] = sha
    return sha


def _seconds(ttl: int) -> str:
    return str(max(1, int(ttl)))


def _count_failed_auth(response: Response) -> Response:
    """A 401 from the API counts against its address's failure windows
    (one round trip); every API reply carries its X-RateLimit-* headers."""
    headers = g.pop("api_rate_limit_headers", None)
    if headers:
        _add_missing(response.headers, headers.items())
    if response.status_code != 401 or not _api_limits_on():
        return response
    from studio.redis_client import get_redis

    try:
        pipeline = get_redis().pipeline(transaction=False)
        for item, key in _failure_windows():
            pipeline.set(key, 0, ex=item.get_expiry(), nx=True)
            pipeline.incr(key)
        pipeline.execute()
    except redis.RedisError:
        log.warning("failed API authentication not counted (Redis unavailable)", exc_info=True)
    return response


def _limit_view(
    app: Flask, limiter: Limiter, endpoint: str, rate, methods=("POST",), shared="", **options
) -> None:
    """Limit `endpoint`'s `methods`; views limited with the same `shared`
    scope count against one budget."""
    view = app.view_functions.get(endpoint)
    if view is None:
        log.warning("no view %s to rate-limit", endpoint)
        return
    options["methods"] = list(methods)
    limit = (
        limiter.shared_limit(rate, shared, **options) if shared else limiter.limit(rate, **options)
    )
    app.view_functions[endpoint] = limit(view)


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
    headers = [
        ("Content-Security-Policy", policy),
        ("X-Content-Type-Options", "nosniff"),
        ("Referrer-Policy", "strict-origin-when-cross-origin"),
    ]
    # X-Frame-Options has no "any site" value: a frameable page goes without it.
    if not frameable:
        headers.append(("X-Frame-Options", "DENY"))
    # The go-live page needs the camera and microphone; nothing else does.
    headers.append(("Permissions-Policy", "camera=(self), microphone=(self), geolocation=()"))
    _add_missing(response.headers, headers)
    return response


def _add_missing(headers: Headers, defaults: Iterable[tuple[str, str]]) -> None:
    """`headers.setdefault(name, value)` for each of `defaults`, reading the
    headers once: werkzeug's are a list, which each setdefault scans twice
    (on every response, for five names)."""
    present = {name.lower() for name, _ in headers}
    headers.extend([(name, value) for name, value in defaults if name.lower() not in present])
