"""nginx under mirakuru, from nginx/*.conf.template: RTMP ingest with HLS, the
control/stat API, the CDN edge in front of the Cloud Storage emulator, and
the studio's HTTP (front) and HTTPS sites when asked for."""

from __future__ import annotations

import os
import pwd
import shutil
import string
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from devtools.gcs import DEFAULT_BUCKET
from devtools.process import ROOT, Service, StackError, Tcp, executor, free_port, start

TEMPLATES = ROOT / "nginx"
RTMP_MODULE = Path("/usr/lib/nginx/modules/ngx_rtmp_module.so")


@dataclass(kw_only=True)
class NginxService(Service):
    """nginx-rtmp ingest, its control/stat API and the CDN edge."""

    rtmp_url: str
    control_url: str
    edge_url: str
    hls_dir: Path
    conf_path: Path
    tls_url: str = ""  # https://HOST:PORT when started with a TlsSite
    front_url: str = ""  # http://127.0.0.1:PORT when started with a FrontSite
    hls_fragment: float = 2.0  # seconds: STUDIO_HLS_FRAGMENT of the studio behind it


@dataclass(kw_only=True)
class TlsSite:
    """HTTPS in front of the studio (sites/tls.conf.template): pages and
    websockets to `studio_url` (/ws/ to `sockets_url` if given), SRS's WebRTC
    endpoints (/rtc/v1/) to `srs_api_url`, /cdn/ to the edge. The certificate
    comes from devtools/tls.py; `name` is the host name in the site's URL."""

    port: int
    cert: Path
    key: Path
    studio_url: str
    srs_api_url: str = "http://127.0.0.1:1985"
    host: str = "127.0.0.1"
    name: str = ""
    sockets_url: str = ""
    ws_per_address: int = 32


@dataclass(kw_only=True)
class FrontSite:
    """The studio over plain HTTP on loopback (sites/front.conf.template),
    routed as in production: /ws/ to the socket tier (at most
    `ws_per_address` at once per client address), the rest to the web tier."""

    port: int
    web_url: str
    sockets_url: str
    ws_per_address: int = 32


def start_nginx(
    var_dir: Path,
    *,
    hook_url: str,
    gcs_url: str,
    bucket: str = DEFAULT_BUCKET,
    rtmp_port: int | None = None,
    http_port: int | None = None,
    edge_port: int | None = None,
    hls_dir: Path | None = None,
    tls: TlsSite | None = None,
    front: FrontSite | None = None,
    hls_fragment: float = 2.0,
    studio_origin: str = "",
) -> NginxService:
    """Render the templates into var_dir/nginx/conf and run nginx; returns
    once it listens. Ports default to free ones; HLS goes to hls_dir/live
    (default var_dir/hls) in fragments of `hls_fragment` seconds. The edge
    asks the studio behind `hook_url` whether a private object's signed
    cookie is valid, and lets `studio_origin` (default: the front site's)
    read with credentials."""
    nginx_dir = (var_dir / "nginx").resolve()
    hls_dir = (hls_dir or var_dir / "hls").resolve()
    for sub in ("conf/sites", "logs", "tmp", "cache"):
        (nginx_dir / sub).mkdir(parents=True, exist_ok=True)
    (hls_dir / "live").mkdir(parents=True, exist_ok=True)
    ports = {
        "RTMP_PORT": rtmp_port or free_port(),
        "HTTP_PORT": http_port or free_port(),
        "EDGE_PORT": edge_port or free_port(),
    }
    values = {"HLS_DIR": hls_dir, "HOOK_URL": hook_url, "GCS_URL": gcs_url.rstrip("/")}
    values |= {
        "EDGE_AUTH_URL": edge_auth_url(hook_url),
        "STUDIO_ORIGIN": _origin(studio_origin)
        or (f"http://127.0.0.1:{front.port}" if front else "-"),
    }
    conf = render_nginx_conf(
        nginx_dir, {**ports, **values, "BUCKET": bucket, **hls_values(hls_fragment)}
    )
    _render_sites(nginx_dir / "conf" / "sites", tls, front, ports["EDGE_PORT"])
    argv = [_binary(), "-p", str(nginx_dir), "-c", str(conf), "-g", "daemon off;"]
    # nginx binds every listening socket before it serves: one port tells.
    log_path = var_dir / "logs" / f"nginx-{ports['RTMP_PORT']}.log"
    server = executor(Tcp, argv, log_path, host="127.0.0.1", port=ports["HTTP_PORT"], timeout=30)
    return NginxService(
        name="nginx",
        url=f"http://127.0.0.1:{ports['HTTP_PORT']}",
        rtmp_url=f"rtmp://127.0.0.1:{ports['RTMP_PORT']}/live",
        control_url=f"http://127.0.0.1:{ports['HTTP_PORT']}",
        edge_url=f"http://127.0.0.1:{ports['EDGE_PORT']}",
        hls_dir=hls_dir,
        conf_path=conf,
        tls_url=f"https://{tls.name or tls.host}:{tls.port}" if tls else "",
        front_url=f"http://127.0.0.1:{front.port}" if front else "",
        hls_fragment=hls_fragment,
        log_path=log_path,
        executor=start(server, "nginx"),
    )


@dataclass(kw_only=True)
class RtmpTargetService(Service):
    """A bare nginx-rtmp server standing in for YouTube or Twitch: it takes
    any publish on `rtmp_url` (no callbacks, no HLS) and reports what it
    receives on `stat_url` (rtmp_stat XML)."""

    rtmp_url: str
    stat_url: str


TARGET_CONF = """\
# A multistream target for development and tests (devtools/nginx.py).
load_module {module};
worker_processes 1;
{user}
error_log {dir}/logs/error.log warn;
pid {dir}/nginx.pid;
events {{ worker_connections 256; }}
rtmp {{
    server {{
        listen 127.0.0.1:{rtmp_port};
        chunk_size 4096;
        application live {{
            live on;
            record off;
            allow play 127.0.0.1;
            deny play all;
        }}
    }}
}}
http {{
    access_log off;
    client_body_temp_path {dir}/tmp;
    server {{
        listen 127.0.0.1:{http_port};
        location /stat {{ rtmp_stat all; }}
    }}
}}
"""


def start_rtmp_target(
    var_dir: Path,
    name: str = "rtmp-target",
    rtmp_port: int | None = None,
    http_port: int | None = None,
) -> RtmpTargetService:
    """Run a second nginx-rtmp under var_dir/NAME that accepts every publish
    to rtmp://127.0.0.1:PORT/live/<key> (free ports unless given: the same
    ones bring a stopped target back). Returns once both ports accept."""
    target_dir = (var_dir / name).resolve()
    for sub in ("logs", "tmp"):
        (target_dir / sub).mkdir(parents=True, exist_ok=True)
    rtmp_port, http_port = rtmp_port or free_port(), http_port or free_port()
    conf = target_dir / "nginx.conf"
    values = {"module": RTMP_MODULE, "user": _user_directive(), "dir": target_dir}
    conf.write_text(TARGET_CONF.format(**values, rtmp_port=rtmp_port, http_port=http_port))
    argv = [_binary(), "-p", str(target_dir), "-c", str(conf), "-g", "daemon off;"]
    # Both ports are bound before nginx serves: one tells.
    log_path = var_dir / "logs" / f"{name}-{rtmp_port}.log"
    server = executor(Tcp, argv, log_path, host="127.0.0.1", port=rtmp_port, timeout=30)
    return RtmpTargetService(
        name=name,
        url=f"http://127.0.0.1:{http_port}",
        rtmp_url=f"rtmp://127.0.0.1:{rtmp_port}/live",
        stat_url=f"http://127.0.0.1:{http_port}/stat",
        log_path=log_path,
        executor=start(server, name),
    )


def edge_auth_url(hook_url: str) -> str:
    """The studio's signed-cookie check for the edge: the hook URL's
    origin and token, path /hooks/cdn-auth."""
    if not hook_url.startswith("http://") or any(c in hook_url for c in ' "\t\n;'):
        raise ValueError(f"hook URL must be a plain http:// URL: {hook_url!r}")
    parts = urllib.parse.urlsplit(hook_url)
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, "/hooks/cdn-auth", parts.query, ""))


def _origin(url: str) -> str:
    """scheme://host[:port] of a URL ("" for ""), safe between quotes in nginx.conf."""
    if not url:
        return ""
    parts = urllib.parse.urlsplit(url)
    origin = f"{parts.scheme}://{parts.netloc}"
    if any(c in origin for c in ' "\t\n;$'):
        raise ValueError(f"not a plain origin: {url!r}")
    return origin


def hls_values(fragment: float) -> dict[str, str]:
    """nginx-rtmp's hls_fragment and hls_playlist_length (six fragments, as
    SRS's window) for a fragment of `fragment` seconds."""
    if fragment <= 0:
        raise StackError(f"HLS fragment must be positive, not {fragment}")
    milliseconds = round(fragment * 1000)
    return {"HLS_FRAGMENT": f"{milliseconds}ms", "HLS_PLAYLIST_LENGTH": f"{6 * milliseconds}ms"}


def render_nginx_conf(nginx_dir: Path, values: dict[str, object]) -> Path:
    """Every nginx/*.conf.template, filled in, into nginx_dir/conf/; returns
    the main file. Workers run as the user who starts nginx (as root they
    would be `nobody`, who can neither write HLS into var/ nor be the
    uploader that deletes those files)."""
    values = {
        "NGINX_DIR": nginx_dir,
        "USER_DIRECTIVE": _user_directive(),
        "EDGE_AUTH_URL": "http://127.0.0.1:9/hooks/cdn-auth",
        "STUDIO_ORIGIN": "-",
        **hls_values(2.0),
        **values,
    }
    for template in sorted(TEMPLATES.glob("*.conf.template")):
        _render(template, nginx_dir / "conf" / template.name.removesuffix(".template"), values)
    return nginx_dir / "conf" / "dev.conf"


def _user_directive() -> str:
    user = pwd.getpwuid(os.geteuid()).pw_name
    return f"user {user};" if os.geteuid() == 0 else "# not root"


def _binary() -> str:
    """nginx, with the RTMP module it loads."""
    if not RTMP_MODULE.exists():
        raise StackError(f"{RTMP_MODULE} missing: apt-get install libnginx-mod-rtmp")
    return shutil.which("nginx") or shutil.which("/usr/sbin/nginx") or "nginx"


def _render_sites(
    sites: Path, tls: TlsSite | None, front: FrontSite | None, edge_port: int
) -> None:
    """conf/sites/*.conf (included by dev.conf): the sites asked for, no other."""
    for old in sites.glob("*.conf"):
        old.unlink()
    if front is not None:
        values = {"FRONT_LISTEN": f"127.0.0.1:{front.port}", "WEB_UPSTREAM": front.web_url}
        values |= {"SOCKETS_UPSTREAM": front.sockets_url, "WS_PER_ADDRESS": front.ws_per_address}
        _render(TEMPLATES / "sites" / "front.conf.template", sites / "front.conf", values)
    if tls is not None:
        values = {
            "TLS_LISTEN": f"{tls.host}:{tls.port}",
            "TLS_CERT": Path(tls.cert).resolve(),
            "TLS_KEY": Path(tls.key).resolve(),
            "STUDIO_UPSTREAM": tls.studio_url,
            "WHIP_UPSTREAM": tls.srs_api_url,
            "CDN_UPSTREAM": f"http://127.0.0.1:{edge_port}",
            "SOCKETS_UPSTREAM": tls.sockets_url or tls.studio_url,
            "WS_PER_ADDRESS": tls.ws_per_address,
        }
        _render(TEMPLATES / "sites" / "tls.conf.template", sites / "tls.conf", values)


def _render(template: Path, target: Path, values: dict[str, object]) -> None:
    """safe_substitute leaves nginx's own `$variables` alone; a `${NAME}` left
    over is a placeholder nobody filled, which is an error. URLs lose a
    trailing slash."""
    values = {k: v.rstrip("/") if isinstance(v, str) else v for k, v in values.items()}
    text = string.Template(template.read_text()).safe_substitute(values)
    if "${" in text:
        missing = text[text.index("${") :].split("}", 1)[0] + "}"
        raise StackError(f"{template.name}: no value for {missing}")
    target.write_text(text)
