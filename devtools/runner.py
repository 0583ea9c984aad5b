"""The studio's processes' environment (for make dev and tests/stack.py) and
make dev's way to start them: deploy/entrypoint.sh's roles."""

from __future__ import annotations

import base64
import hashlib
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from devtools.nginx import NginxService, start_nginx
from devtools.process import ROOT, StackError
from devtools.services import GcsService

# Seconds a gunicorn may take until its app answers: importing the app in
# each worker takes well over 10 s when the machine is busy.
SERVE_TIMEOUT = 120.0
LIVENESS_PATH = "/healthz"  # studio/health.py: no database, no Redis
ENTRYPOINT = ROOT / "deploy" / "entrypoint.sh"


def studio_env(
    *,
    database_url: str,
    redis_url: str,
    gcs: GcsService,
    nginx: NginxService | None,
    public_url: str,
    secret_key: str,
    hook_token: str,
    engine: str = "nginx-rtmp",
    extra: dict[str, str] | None = None,
) -> dict[str, str]:
    """The environment every studio process gets (see README's table)."""
    # Private streams' cookie-signing key (Cloud CDN's form), derived from the
    # secret key so it survives restarts; the environment's own key wins.
    cdn_key = hashlib.sha256(b"studio-dev-cdn-key:" + secret_key.encode()).digest()[:16]
    defaults = {
        "STUDIO_CDN_SIGNING_KEY_NAME": "dev-key",
        "STUDIO_CDN_SIGNING_KEY": base64.urlsafe_b64encode(cdn_key).decode(),
    }
    if nginx is not None and nginx.tls_url:
        # Only the HTTPS site passes /rtc/v1/ to SRS: WebRTC URLs name it.
        defaults["STUDIO_WEBRTC_ORIGIN"] = nginx.tls_url
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        # The entrypoint runs flask, gunicorn and python: this environment's.
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONUNBUFFERED": "1",
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "STORAGE_EMULATOR_HOST": gcs.url,
        "STUDIO_GCS_BUCKET": gcs.bucket,
        "STUDIO_SECRET_KEY": secret_key,
        "STUDIO_HOOK_TOKEN": hook_token,
        "STUDIO_PUBLIC_URL": public_url,
        "STUDIO_MEDIA_ENGINE": engine,
    }
    env |= {key: os.environ.get(key) or value for key, value in defaults.items()}
    if nginx is not None:
        env.update(
            STUDIO_HLS_DIR=str(nginx.hls_dir),
            STUDIO_CDN_URL=nginx.edge_url,
            STUDIO_RTMP_URL=nginx.rtmp_url,
            STUDIO_NGINX_CONTROL_URL=nginx.control_url,
            # The playlists' target duration and Cache-Control follow nginx's.
            STUDIO_HLS_FRAGMENT=str(nginx.hls_fragment),
        )
    return env | (extra or {})


def hook_url(hooks_port: int, engine: str, token: str) -> str:
    """The callback URL of engine "srs" or "nginx-rtmp" on the callback tier."""
    return f"http://127.0.0.1:{hooks_port}/hooks/{engine}?token={token}"


def role_argv(role: str, *args: str) -> list[str]:
    """deploy/entrypoint.sh's ROLE: a process as the containers start it."""
    return ["sh", str(ENTRYPOINT), role, *args]


def run_role(env: dict[str, str], role: str, timeout: float = 120) -> None:
    """A role that runs to its end (`migrate`), or a StackError with its output."""
    output = {"capture_output": True, "text": True, "check": False}
    result = subprocess.run(role_argv(role), cwd=ROOT, env=env, timeout=timeout, **output)
    if result.returncode != 0:
        raise StackError(f"{role} failed:\n{result.stdout}{result.stderr}")


@dataclass
class LocalNode:
    """Media node `id` on this machine: its nginx-rtmp (own HLS directory,
    callbacks naming the node) and the `env` of its watcher and workers."""

    id: str
    nginx: NginxService
    env: dict[str, str]


def node_hook_url(hook_url: str, node_id: str) -> str:
    """`hook_url` naming node `node_id` (an id is URL-safe: `check_node_id`)."""
    return f"{hook_url}{'&' if '?' in hook_url else '?'}node={node_id}"


def start_node_nginx(
    env: dict[str, str], var_dir: Path, node_id: str, *, hook_url: str, **ports: int | None
) -> LocalNode:
    """Node `node_id`'s nginx-rtmp started under var_dir/nodes/<id>/, its edge
    in front of `env`'s bucket."""
    from studio.media.jobs import check_node_id

    nginx = start_nginx(
        (var_dir / "nodes" / check_node_id(node_id)).resolve(),
        hook_url=node_hook_url(hook_url, node_id),
        gcs_url=env["STORAGE_EMULATOR_HOST"],
        bucket=env["STUDIO_GCS_BUCKET"],
        hls_fragment=float(env.get("STUDIO_HLS_FRAGMENT", 2.0)),
        **ports,
    )
    own = {"STUDIO_NODE_ID": node_id, "STUDIO_NGINX_CONTROL_URL": nginx.control_url}
    return LocalNode(node_id, nginx, {**env, **own, "STUDIO_HLS_DIR": str(nginx.hls_dir)})
