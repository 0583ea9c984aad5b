"""nginx under mirakuru from nginx/*.conf.template (RTMP ingest with HLS, its
control API, the CDN edge, the studio's sites) and from nginx/standalone/."""

from __future__ import annotations

import os
import shutil
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from mirakuru import TCPExecutor

from devtools.process import ROOT, Service, StackError, executor, free_port, render, start
from devtools.services import DEFAULT_BUCKET
from devtools.tls import TlsFiles

TEMPLATES = ROOT / "nginx"
RTMP_MODULE = Path("/usr/lib/nginx/modules/ngx_rtmp_module.so")
STREAM_MODULE = Path("/usr/lib/nginx/modules/ngx_stream_module.so")


@dataclass(kw_only=True)
class NginxService(Service):
    rtmp_url: str
    control_url: str
    edge_url: str
    hls_dir: Path
    tls_url: str = ""  # https://NAME:PORT when the front site has TLS
    hls_fragment: float = 2.0  # seconds: STUDIO_HLS_FRAGMENT of the studio behind it


@dataclass(kw_only=True)
class FrontSite:
    """The studio routed as in production (/ws/ to the socket tier, the rest to
    the web tier) over HTTP on loopback and, with `tls`, over HTTPS on
    tls_host:tls_port too (SRS's WebRTC endpoints to `srs_api_url`)."""

    port: int
    web_url: str
    sockets_url: str
    ws_per_address: int = 32
    tls: TlsFiles | None = None
    tls_port: int = 0
    tls_host: str = "127.0.0.1"
    srs_api_url: str = "http://127.0.0.1:1985"


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
    front: FrontSite | None = None,
    hls_fragment: float = 2.0,
    studio_origin: str = "",
) -> NginxService:
    """nginx from the templates (into var_dir/nginx/conf), once it listens; HLS
    in hls_dir/live (default var_dir/hls). The edge lets `studio_origin`
    (default: the front site's) read with credentials."""
    nginx_dir = (var_dir / "nginx").resolve()
    hls_dir = (hls_dir or var_dir / "hls").resolve()
    (hls_dir / "live").mkdir(parents=True, exist_ok=True)
    rtmp_port, http_port, edge_port = (p or free_port() for p in (rtmp_port, http_port, edge_port))
    origin = studio_origin or (f"http://127.0.0.1:{front.port}" if front else "")
    parts = urllib.parse.urlsplit(origin)
    values = {"RTMP_PORT": rtmp_port, "HTTP_PORT": http_port, "EDGE_PORT": edge_port}
    values |= {"HLS_DIR": hls_dir, "HOOK_URL": hook_url, "GCS_URL": gcs_url, "BUCKET": bucket}
    values |= {"EDGE_AUTH_URL": edge_auth_url(hook_url)}
    values |= {"STUDIO_ORIGIN": _plain(f"{parts.scheme}://{parts.netloc}") if origin else "-"}
    conf = render_nginx_conf(nginx_dir, values | hls_values(hls_fragment), front)
    server = _nginx(nginx_dir, conf, var_dir / "logs" / f"nginx-{rtmp_port}.log", http_port)
    tls = front and front.tls
    return NginxService(
        name="nginx",
        url=f"http://127.0.0.1:{http_port}",
        rtmp_url=f"rtmp://127.0.0.1:{rtmp_port}/live",
        control_url=f"http://127.0.0.1:{http_port}",
        edge_url=f"http://127.0.0.1:{edge_port}",
        hls_dir=hls_dir,
        tls_url=f"https://{tls.names[0]}:{front.tls_port}" if tls else "",
        hls_fragment=hls_fragment,
        log_path=server.log_path,
        executor=server,
    )


def start_rtmp_proxy(var_dir: Path, rtmp_urls: list[str], rtmp_port: int | None = None) -> Service:
    """One RTMP address in front of the media nodes' `rtmp_urls` (nginx's stream module)."""
    if not STREAM_MODULE.exists():
        raise StackError(f"{STREAM_MODULE} missing: apt-get install libnginx-mod-stream")
    rtmp_port = rtmp_port or free_port()
    hosts = (urllib.parse.urlsplit(url).netloc for url in rtmp_urls)
    upstreams = "\n".join(f"        server {host} max_fails=1 fail_timeout=10s;" for host in hosts)
    values = {"RTMP_PORT": rtmp_port, "UPSTREAMS": upstreams, "STREAM_MODULE": STREAM_MODULE}
    server = start_standalone("rtmp-proxy", var_dir, "rtmp-proxy", values, rtmp_port)
    url = f"rtmp://127.0.0.1:{rtmp_port}/live"
    return Service(name="rtmp-proxy", url=url, log_path=server.log_path, executor=server)


def start_standalone(
    template: str, var_dir: Path, name: str, values: dict, port: int
) -> TCPExecutor:
    """nginx/standalone/TEMPLATE.conf.template run in var_dir/NAME."""
    home = (var_dir / name).resolve()
    conf = _render(f"standalone/{template}.conf", home, {"NGINX_DIR": home, **values})
    return _nginx(home, conf, var_dir / "logs" / f"{name}-{port}.log", port)


def edge_auth_url(hook_url: str) -> str:
    """The edge's signed-cookie check: the hook URL's path -> /hooks/cdn-auth."""
    parts = urllib.parse.urlsplit(_plain(hook_url))
    if parts.scheme != "http":
        raise ValueError(f"hook URL must be an http:// URL: {hook_url!r}")
    return urllib.parse.urlunsplit(("http", parts.netloc, "/hooks/cdn-auth", parts.query, ""))


def _plain(url: str) -> str:
    """`url`, refused if it would not stay one value between quotes in nginx.conf."""
    if any(c in url for c in ' "\t\n;$'):
        raise ValueError(f"not a plain URL: {url!r}")
    return url


def hls_values(fragment: float) -> dict[str, str]:
    """nginx-rtmp's hls_fragment and hls_playlist_length (six fragments, as SRS)."""
    if fragment <= 0:
        raise StackError(f"HLS fragment must be positive, not {fragment}")
    milliseconds = round(fragment * 1000)
    return {"HLS_FRAGMENT": f"{milliseconds}ms", "HLS_PLAYLIST_LENGTH": f"{6 * milliseconds}ms"}


def render_nginx_conf(nginx_dir: Path, values: dict, front: FrontSite | None = None) -> Path:
    """The templates (and the front site's) filled in under nginx_dir/conf/; returns dev.conf."""
    conf = nginx_dir / "conf"
    for old in (conf / "sites").glob("*.conf"):
        old.unlink()
    values = {"NGINX_DIR": nginx_dir, "RTMP_MODULE": RTMP_MODULE, **values}
    names = [t.name.removesuffix(".template") for t in TEMPLATES.glob("*.conf.template")]
    if front:
        values |= {key.upper(): value for key, value in vars(front).items()}
        names.append("sites/front.conf")
    if front and front.tls:
        values |= {"CERT": front.tls.cert.resolve(), "KEY": front.tls.key.resolve()}
        names.append("sites/tls.conf")
    for name in names:
        _render(name, conf, values)
    return conf / "dev.conf"


def _nginx(prefix: Path, conf: Path, log_path: Path, port: int) -> TCPExecutor:
    """nginx in the foreground, started once `port` accepts (all are bound by then)."""
    if not RTMP_MODULE.exists():
        raise StackError(f"{RTMP_MODULE} missing: apt-get install libnginx-mod-rtmp")
    for sub in ("logs", "tmp", "cache"):
        (prefix / sub).mkdir(parents=True, exist_ok=True)
    binary = shutil.which("nginx") or shutil.which("/usr/sbin/nginx") or "nginx"
    argv = [binary, "-p", str(prefix), "-c", str(conf), "-g", "daemon off;"]
    server = executor(TCPExecutor, argv, log_path, host="127.0.0.1", port=port, timeout=30)
    return start(server, prefix.name)


def _render(name: str, target_dir: Path, values: dict[str, object]) -> Path:
    """TEMPLATES/NAME.template filled in, written to target_dir/NAME. nginx's
    workers run as the user who starts it (not `nobody`, who cannot write var/)."""
    target = target_dir / name
    target.parent.mkdir(parents=True, exist_ok=True)
    user = "user root;" if os.geteuid() == 0 else "# not root"
    target.write_text(render(TEMPLATES / f"{name}.template", {"USER_DIRECTIVE": user, **values}))
    return target
