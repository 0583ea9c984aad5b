"""nginx under mirakuru: RTMP ingest with HLS, the control/stat API, the CDN
edge in front of the Cloud Storage emulator and the optional HTTP and HTTPS
sites, rendered from nginx/*.conf.template."""

from __future__ import annotations

import os
import pwd
import shutil
import string
from dataclasses import dataclass
from pathlib import Path

from devtools.gcs import DEFAULT_BUCKET
from devtools.process import ROOT, Service, StackError, Tcp, executor, free_port, start

NGINX_TEMPLATES = ROOT / "nginx"
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
    """HTTPS in front of the studio (nginx/sites/tls.conf.template): pages
    and websockets to `studio_url`, SRS's WebRTC endpoints (/rtc/v1/whip/,
    /rtc/v1/publish/, /rtc/v1/whep/) to `srs_api_url`, /cdn/ to the edge.
    The certificate comes from devtools/tls.py. `name` is the host name in
    the site's URL (a name in the certificate; default `host`)."""

    port: int
    cert: Path
    key: Path
    studio_url: str
    srs_api_url: str = "http://127.0.0.1:1985"
    host: str = "127.0.0.1"
    name: str = ""
    sockets_url: str = ""  # the socket tier for /ws/ (default: studio_url)
    ws_per_address: int = 32


@dataclass(kw_only=True)
class FrontSite:
    """The studio over plain HTTP on loopback (nginx/sites/front.conf.template),
    routed as in production: /ws/ to the socket tier at `sockets_url`, at
    most `ws_per_address` at once per client address; the rest to the web
    tier at `web_url`."""

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
) -> NginxService:
    """Render nginx/*.conf.template into var_dir/nginx/conf and run nginx.

    Ports default to free ones; HLS goes to hls_dir/live (default
    var_dir/hls) in fragments of `hls_fragment` seconds (the studio's
    STUDIO_HLS_FRAGMENT). With `tls`, nginx also serves the studio over HTTPS;
    with `front`, over HTTP (`front_url`).
    Returns once every port accepts.
    """
    nginx_dir = (var_dir / "nginx").resolve()
    hls_dir = (hls_dir or var_dir / "hls").resolve()
    for sub in ("conf", "logs", "tmp", "cache"):
        (nginx_dir / sub).mkdir(parents=True, exist_ok=True)
    (hls_dir / "live").mkdir(parents=True, exist_ok=True)
    ports = {
        "RTMP_PORT": rtmp_port or free_port(),
        "HTTP_PORT": http_port or free_port(),
        "EDGE_PORT": edge_port or free_port(),
    }
    conf = render_nginx_conf(
        nginx_dir,
        {
            **ports,
            "HLS_DIR": hls_dir,
            "HOOK_URL": _checked_hook_url(hook_url),
            "GCS_URL": gcs_url.rstrip("/"),
            "BUCKET": bucket,
            **hls_values(hls_fragment),
        },
    )
    render_sites(nginx_dir, tls, ports["EDGE_PORT"], front)
    argv = [_nginx_binary(), "-p", str(nginx_dir), "-c", str(conf), "-g", "daemon off;"]
    # nginx binds every listening socket before it serves: one port tells.
    log_path = var_dir / "logs" / f"nginx-{ports['RTMP_PORT']}.log"
    server = executor(Tcp, argv, log_path, host="127.0.0.1", port=ports["HTTP_PORT"], timeout=30)
    start(server, "nginx")
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
        executor=server,
    )


def render_sites(
    nginx_dir: Path, tls: TlsSite | None, edge_port: int, front: FrontSite | None = None
) -> None:
    """conf/sites/*.conf (included by dev.conf): the HTTP and HTTPS sites asked for."""
    sites = nginx_dir / "conf" / "sites"
    sites.mkdir(parents=True, exist_ok=True)
    for old in sites.glob("*.conf"):
        old.unlink()
    if front is not None:
        _render_site(
            sites,
            "front",
            {
                "FRONT_LISTEN": f"127.0.0.1:{front.port}",
                "WEB_UPSTREAM": front.web_url.rstrip("/"),
                "SOCKETS_UPSTREAM": front.sockets_url.rstrip("/"),
                "WS_PER_ADDRESS": int(front.ws_per_address),
            },
        )
    if tls is None:
        return
    values = {
        "TLS_LISTEN": f"{tls.host}:{tls.port}",
        "TLS_CERT": Path(tls.cert).resolve(),
        "TLS_KEY": Path(tls.key).resolve(),
        "STUDIO_UPSTREAM": tls.studio_url.rstrip("/"),
        "WHIP_UPSTREAM": tls.srs_api_url.rstrip("/"),
        "CDN_UPSTREAM": f"http://127.0.0.1:{edge_port}",
        "SOCKETS_UPSTREAM": (tls.sockets_url or tls.studio_url).rstrip("/"),
        "WS_PER_ADDRESS": int(tls.ws_per_address),
    }
    _render_site(sites, "tls", values)


def _render_site(sites: Path, name: str, values: dict[str, object]) -> None:
    template = NGINX_TEMPLATES / "sites" / f"{name}.conf.template"
    text = string.Template(template.read_text()).safe_substitute(values)
    if "${" in text:
        raise StackError(f"{template.name}: a placeholder has no value")
    (sites / f"{name}.conf").write_text(text)


def hls_values(fragment: float) -> dict[str, str]:
    """nginx-rtmp's hls_fragment and hls_playlist_length (six fragments, as
    SRS's window) for a fragment of `fragment` seconds."""
    if fragment <= 0:
        raise StackError(f"HLS fragment must be positive, not {fragment}")
    milliseconds = round(fragment * 1000)
    return {"HLS_FRAGMENT": f"{milliseconds}ms", "HLS_PLAYLIST_LENGTH": f"{6 * milliseconds}ms"}


def render_nginx_conf(nginx_dir: Path, values: dict[str, object]) -> Path:
    """Write every nginx/*.conf.template, filled in, to nginx_dir/conf/.

    safe_substitute leaves nginx's own `$variables` alone; a `${NAME}` left
    over is a placeholder nobody filled, which is an error.
    """
    values = {
        "NGINX_DIR": nginx_dir,
        "USER_DIRECTIVE": _user_directive(),
        **hls_values(2.0),
        **values,
    }
    for template in sorted(NGINX_TEMPLATES.glob("*.conf.template")):
        text = string.Template(template.read_text()).safe_substitute(values)
        if "${" in text:
            missing = text[text.index("${") :].split("}", 1)[0] + "}"
            raise StackError(f"{template.name}: no value for {missing}")
        (nginx_dir / "conf" / template.name.removesuffix(".template")).write_text(text)
    return nginx_dir / "conf" / "dev.conf"


def _user_directive() -> str:
    """Workers run as the user who starts nginx.

    As root, nginx would otherwise run its workers as `nobody`, which can
    neither write HLS into a root-owned var/ nor be the same user as the
    studio's uploader that deletes those files. Not root: `user` is ignored.
    """
    if os.geteuid() != 0:
        return "# not root: workers run as the invoking user"
    name = pwd.getpwuid(os.geteuid()).pw_name
    return f"user {name};"


def _checked_hook_url(url: str) -> str:
    """The hook URL, if it can go between double quotes in nginx.conf."""
    if not url.startswith("http://") or any(c in url for c in ' "\t\n;'):
        raise ValueError(f"hook URL must be a plain http:// URL: {url!r}")
    return url


def _nginx_binary() -> str:
    """The nginx executable, once the RTMP module is known to be installed."""
    if not RTMP_MODULE.exists():
        raise StackError(f"{RTMP_MODULE} missing: apt-get install libnginx-mod-rtmp")
    found = shutil.which("nginx") or shutil.which("/usr/sbin/nginx")
    if found is None:
        raise StackError("nginx not found: run devtools/bootstrap.sh")
    return found
