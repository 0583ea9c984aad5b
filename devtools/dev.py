"""`make dev`: the services under mirakuru (PostgreSQL: the checkout's own
database; a private Redis; fake-gcs-server; nginx), the migrations, then
production's processes under honcho (`Supervisor`) in the foreground.
SRS_BIN=/path/to/objs/srs makes SRS 5 the ingest."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import secrets
import shlex
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import NamedTuple, TextIO

import honcho.manager
import requests
from dotenv import dotenv_values
from honcho.printer import Message, Printer
from sqlalchemy.engine import make_url

from devtools import runner, tls
from devtools.nginx import FrontSite, start_nginx, start_rtmp_proxy
from devtools.process import ROOT, Service, StackError, free_port, render
from devtools.services import ensure_postgres, ensure_redis, start_fake_gcs

# Another state directory (tests run a whole `make dev` in a temporary one).
VAR = Path(os.environ.get("STUDIO_DEV_VAR") or ROOT / "var")
BANNER = Path(__file__).with_name("banner.txt")
SETTINGS = Path(__file__).with_name("dev.env")
WORKERS, NODE_WORKERS = 4, 2  # upload workers (docs/benchmarks.md), and per media node
SRS_CONF = ROOT / "srs" / "srs.conf"
# SRS through a filter that takes secrets out of its console log (compose too).
REDACTED_RUN = ROOT / "srs" / "run-redacted.sh"


def load_secrets(var_dir: Path) -> dict[str, str]:
    """STUDIO_SECRET_KEY and STUDIO_HOOK_TOKEN: the environment's, else those
    generated on the first run into var/secrets.env (mode 600)."""
    path = var_dir / "secrets.env"
    saved = {k: v for k, v in dotenv_values(path).items() if v} if path.exists() else {}
    missing = [key for key in ("STUDIO_SECRET_KEY", "STUDIO_HOOK_TOKEN") if key not in saved]
    saved.update({key: secrets.token_urlsafe(32) for key in missing})
    if missing:
        var_dir.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(f"{k}={v}\n" for k, v in saved.items()))
        path.chmod(0o600)
    return {**saved, **{k: os.environ[k] for k in saved if os.environ.get(k)}}


def checkout_database(root: Path) -> str:
    """`studio_<folder>_<hash of its path>`: two checkouts never share one."""
    path = str(root.resolve())
    slug = re.sub(r"[^a-z0-9]+", "_", Path(path).name.lower()).strip("_")[:24]
    digest = hashlib.sha256(path.encode()).hexdigest()[:8]
    return f"studio_{slug}_{digest}" if slug else f"studio_{digest}"


def main() -> int:
    services: list[Service] = []
    # Started by make in the background, Python may inherit SIGINT ignored.
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, lambda *_: sys.exit(0))
    try:
        supervisor = start(services)
        if supervisor.exited is None:
            return 0  # stopped by Ctrl-C / SIGTERM
        code = supervisor.exited[1]
        return 128 - code if code < 0 else code or 1
    except (KeyboardInterrupt, SystemExit):
        return 0
    except StackError as error:
        print(f"make dev: {error}", file=sys.stderr)
        return 1
    finally:
        print("\nstopping ...", file=sys.stderr)
        for service in reversed(services):
            service.stop()


def start(services: list[Service]) -> Supervisor:
    """The services (into `services`), the migrations, the processes until they stop."""
    keys, srs_bin = load_secrets(VAR), os.environ.get("SRS_BIN")
    engine, node_count = "srs" if srs_bin else "nginx-rtmp", media_node_count(srs_bin)
    settings = {key: os.environ.get(key, value) for key, value in dotenv_values(SETTINGS).items()}
    services.append(postgres := ensure_postgres(VAR, checkout_database(ROOT)))
    services.append(redis := ensure_redis(VAR))
    services.append(gcs := start_fake_gcs(VAR, free_port(4443), backend="filesystem"))
    names = ("front", "web", "sockets", "hooks")
    ports = {name: free_port(5000 + n) for n, name in enumerate(names)}
    url = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    public_url = os.environ.get("STUDIO_PUBLIC_URL", url["front"])
    # The engine's callbacks go to the callback tier, never behind pages.
    hook_url = runner.hook_url(ports["hooks"], engine, keys["STUDIO_HOOK_TOKEN"])
    # HTTPS: browsers allow the go-live page's camera on https://<machine name>:8443.
    srs_api, cert = free_port(1985) if srs_bin else 9, tls.dev_cert(VAR)
    front = FrontSite(
        port=ports["front"],
        web_url=url["web"],
        sockets_url=url["sockets"],
        tls=cert,
        tls_port=free_port(8443),
        tls_host="0.0.0.0",  # noqa: S104 - WebRTC URLs work from other devices
        srs_api_url=f"http://127.0.0.1:{srs_api}",
    )
    nginx = start_nginx(
        VAR,
        hook_url=hook_url,
        gcs_url=gcs.url,
        bucket=gcs.bucket,
        rtmp_port=free_port(None if srs_bin or node_count else 1935),
        http_port=free_port(8080),
        edge_port=free_port(8081),
        front=front,
        hls_fragment=float(settings["STUDIO_HLS_FRAGMENT"]),
        studio_origin=public_url,  # hls.js sends private streams' cookies from there
    )
    services.append(nginx)
    supervisor, ingest_ports = Supervisor(VAR / "logs"), []
    if srs_bin:
        launch = srs_launch(VAR, srs_bin, hook_url, nginx.hls_dir, api_port=srs_api)
        supervisor.add("srs", launch.argv, launch.env, cwd=launch.cwd)
        ingest_ports = [launch.ports["RTMP_PORT"]]
        settings["STUDIO_RTMP_URL"] = f"rtmp://127.0.0.1:{ingest_ports[0]}/live"
        settings["STUDIO_SRS_API_URL"] = f"http://127.0.0.1:{srs_api}"
    env = runner.studio_env(
        database_url=postgres.url,
        redis_url=redis.url,
        gcs=gcs,
        nginx=nginx,
        public_url=public_url,
        secret_key=keys["STUDIO_SECRET_KEY"],
        hook_token=keys["STUDIO_HOOK_TOKEN"],
        engine=engine,
        extra=settings,
    )
    nodes = start_media_nodes(node_count, services, supervisor, env, hook_url)
    print(f"migrating the database {postgres.database} ...", flush=True)
    runner.run_role(env, "migrate")
    add_studio_processes(supervisor, env, ports, watcher=not nodes)
    for service in services:
        supervisor.watch(service)
    banner = BANNER.read_text().format(
        public_url=public_url,
        https=", ".join(f"https://{name}:{front.tls_port}" for name in cert.names),
        rtmp_url=env["STUDIO_RTMP_URL"],
        nodes="".join(
            f"\n  Media node    {n.id}: {n.nginx.rtmp_url}  {n.nginx.hls_dir}" for n in nodes
        ),
        engine=f"SRS ({srs_bin})" if srs_bin else "nginx-rtmp",
        edge_url=nginx.edge_url,
        bucket_url=f"{gcs.url}/{gcs.bucket}",
        database=make_url(postgres.url).render_as_string(),
        redis=make_url(redis.url).render_as_string(),
        logs=VAR / "logs",
    )
    tiers = [url[name] + runner.LIVENESS_PATH for name in ("web", "sockets", "hooks")]
    supervisor.run(lambda: _ready(tiers, ingest_ports) and print(banner, end="", flush=True))
    return supervisor


def media_node_count(srs_bin: str | None) -> int:
    """MEDIA_NODES: how many local media nodes (0 or unset: none)."""
    value = os.environ.get("MEDIA_NODES") or "0"
    if not value.isdigit() or int(value) > 8:
        raise StackError(f"MEDIA_NODES must be a number of nodes from 0 to 8, not {value!r}")
    if int(value) and srs_bin:
        raise StackError("MEDIA_NODES runs nginx-rtmp media nodes: unset SRS_BIN")
    return int(value)


def start_media_nodes(
    count: int, services: list[Service], supervisor: Supervisor, env: dict, hook_url: str
) -> list[runner.LocalNode]:
    """Nodes node-1 .. node-<count> (watcher, upload workers) behind one RTMP
    address; `env` (the studio's) learns the pool and that address."""
    nodes = []
    for node_id in (f"node-{number}" for number in range(1, count + 1)):
        nodes.append(node := runner.start_node_nginx(env, VAR, node_id, hook_url=hook_url))
        node.nginx.name = f"nginx-{node_id}"
        services.append(node.nginx)
    if nodes:
        proxy = start_rtmp_proxy(VAR, [node.nginx.rtmp_url for node in nodes], free_port(1935))
        services.append(proxy)
        pool = [{"id": node.id, "api_url": node.nginx.control_url} for node in nodes]
        env.update(STUDIO_MEDIA_NODES=json.dumps(pool), STUDIO_RTMP_URL=proxy.url)
    for node in nodes:
        node.env.update({key: env[key] for key in ("STUDIO_MEDIA_NODES", "STUDIO_RTMP_URL")})
        add_role(supervisor, f"watcher-{node.id}", node.env, "watcher", "--node", node.id)
        for number in range(1, NODE_WORKERS + 1):
            add_role(supervisor, f"rq-worker-{node.id}-{number}", node.env, "worker")
    return nodes


def add_studio_processes(
    supervisor: Supervisor, env: dict[str, str], ports: dict, *, watcher: bool = True
) -> None:
    """The studio's processes as the containers start them: deploy/entrypoint.sh's roles."""
    run, metrics = VAR.resolve() / "run", VAR.resolve() / "metrics"
    run.mkdir(parents=True, exist_ok=True)
    for name, tier in (("gunicorn", "web"), ("sockets", "sockets"), ("hooks", "hooks")):
        # Not ~/.gunicorn/gunicorn.ctl, which every gunicorn of the user shares.
        options = ["--bind", f"127.0.0.1:{ports[tier]}", "--control-socket", f"{run}/{name}.ctl"]
        options += ["--graceful-timeout", "5", *(["--workers", "1"] if tier != "web" else [])]
        tier_env = {**env, "PROMETHEUS_MULTIPROC_DIR": str(metrics / tier)}
        supervisor.add(name, runner.role_argv(tier, *options), tier_env)
    for number in range(1, WORKERS + 1):
        add_role(supervisor, f"rq-worker-{number}", env, "worker")
    for role in ["watcher"] * watcher + ["reconciler", "multistream"]:
        add_role(supervisor, role, env, role)


def add_role(supervisor: Supervisor, name: str, env: dict[str, str], role: str, *args) -> None:
    """A background role, its /metrics on a port of its own."""
    own_env = {**env, "STUDIO_METRICS_PORT": str(free_port())}
    supervisor.add(name, runner.role_argv(role, *args), own_env)


class SrsLaunch(NamedTuple):
    argv: list[str]
    env: dict[str, str]
    cwd: Path
    ports: dict[str, int]  # RTMP_PORT, API_PORT, RTC_PORT, EXPORTER_PORT


def srs_launch(
    var_dir: Path,
    srs_bin: str,
    hook_url: str,
    hls_dir: Path,
    *,
    api_port: int | None = None,
    environ: Mapping[str, str] | None = None,
) -> SrsLaunch:
    """SRS 5 with srs/srs.conf and srs/dev.env.template's environment, in
    var/srs, its pid file in var/run (else SRS fails on `./objs/srs.pid`).
    `environ` (default os.environ) is passed on, with CANDIDATE (the address
    browsers reach for WebRTC) and SRS_LOG_LEVEL."""
    environ = os.environ if environ is None else environ
    var_dir = var_dir.resolve()
    cwd, run_dir = var_dir / "srs", var_dir / "run"
    for directory in (cwd, run_dir, hls_dir):
        directory.mkdir(parents=True, exist_ok=True)
    ports = {"RTMP_PORT": free_port(1935), "RTC_PORT": free_port(8000)}
    ports |= {"API_PORT": api_port or free_port(1985), "EXPORTER_PORT": free_port(9972)}
    values = {"RUN_DIR": run_dir, "HLS_DIR": hls_dir.resolve(), "HOOK_URL": hook_url, **ports}
    values |= {"CANDIDATE": environ.get("CANDIDATE") or "127.0.0.1"}
    values |= {"LOG_LEVEL": environ.get("SRS_LOG_LEVEL") or "error"}
    text = render(ROOT / "srs" / "dev.env.template", values)
    settings = dotenv_values(stream=io.StringIO(text), interpolate=False)
    # A v2 level (log4j names) would win over srs_log_level in SRS 5.
    passed_on = {k: v for k, v in environ.items() if not k.endswith("LOG_LEVEL_V2")}
    env = {**passed_on, **settings, "SRS_BIN": srs_bin}  # SRS_BIN: for run-redacted.sh
    return SrsLaunch(["bash", str(REDACTED_RUN), "-c", str(SRS_CONF)], env, cwd, ports)


def _ready(urls: list[str], ports: list[int], timeout: float = runner.SERVE_TIMEOUT) -> bool:
    """Whether every URL answers and every port accepts within `timeout` s
    (honcho has no readiness checks)."""
    checks = [lambda u=u: requests.get(u, timeout=30) for u in urls]
    checks += [lambda p=p: socket.create_connection(("127.0.0.1", p), 2).close() for p in ports]
    deadline = time.monotonic() + timeout
    while checks and time.monotonic() < deadline:
        try:
            checks[0]()
            checks.pop(0)
        except OSError:  # refused, reset, timed out (requests' errors too)
            time.sleep(0.2)
    return not checks


class _LogPrinter(Printer):
    """honcho's prefixed output, plus each child's lines in its log file."""

    def __init__(self, output: TextIO, log_paths: dict[str, Path]) -> None:
        super().__init__(output)
        self.log_paths = log_paths

    def write(self, message: Message) -> None:
        if path := self.log_paths.get(message.name):
            data = message.data if isinstance(message.data, bytes) else message.data.encode()
            with open(path, "ab") as log:
                log.write(data)
        super().write(message)


class Supervisor(honcho.manager.Manager):
    """Until a child exits or SIGINT/SIGTERM/SIGHUP; `exited`: (name, code) of the first."""

    def __init__(self, log_dir: Path, *, output: TextIO = sys.stdout, kill_wait: int = 25) -> None:
        self.log_dir, self.log_paths = log_dir, {}
        super().__init__(_LogPrinter(output, self.log_paths))
        # Longer than the slowest graceful stop (an RQ worker finishing an upload).
        honcho.manager.KILL_WAIT = kill_wait
        self.exited: tuple[str, int] | None = None
        self._watched: list[Service] = []
        self._on_started: Callable[[], object] = lambda: None

    def add(self, name: str, argv: list[str], env: Mapping[str, str], cwd: Path = ROOT) -> Path:
        """A child to start with run(), logging to log_dir/NAME.log."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.log_paths[name] = self.log_dir / f"{name}.log"
        self.log_paths[name].touch()
        # exec: the shell honcho starts becomes the program (signals, exit code).
        self.add_process(name, "exec " + shlex.join(argv), env=dict(env), cwd=str(cwd))
        return self.log_paths[name]

    def watch(self, service: Service) -> None:
        """A service started before (by mirakuru): if it dies, everything stops."""
        if service.executor is not None:
            self.log_paths.setdefault(service.name, service.log_path)
            self._watched.append(service)

    def run(self, on_started: Callable[[], object] = lambda: None) -> None:
        """Start every child, run `on_started` in a thread, block until all have stopped."""
        self._on_started = on_started
        self.loop()

    def _start(self) -> None:
        super()._start()
        # Not before honcho's forks: its per-child processes must not act on
        # a hangup, nor inherit a thread's lock.
        signal.signal(signal.SIGHUP, lambda *_: self.terminate())
        for target in (self._watch_services, self._on_started):
            threading.Thread(target=target, daemon=True).start()

    def terminate(self) -> None:
        # honcho terminates the others as soon as a child has exited.
        stopped = [name for name, state in self._processes.items() if "returncode" in state]
        if stopped and not self._terminating and self.exited is None:
            self._report(stopped[0], self._processes[stopped[0]]["returncode"])
        super().terminate()

    def _report(self, name: str, code: int) -> None:
        self.exited = (name, code)
        how = f"exited with code {code}"
        if code < 0:
            how = f"was killed by {signal.Signals(-code).name} (exit code {code})"
        self._system_print(
            f"{name} {how}; its log: {self.log_paths.get(name)}\n"
            "Stopping everything; fix what the log shows and run `make dev` again.\n"
        )

    def _watch_services(self) -> None:
        while not self._terminating:
            time.sleep(1)
            for service in self._watched:
                if not (service.executor.running() or self._terminating):
                    # A PostgreSQL cluster's process is pg_ctl, which exited with 0.
                    process = service.executor.process
                    self._report(service.name, (process and process.returncode) or 1)
                    self.terminate()
                    return


if __name__ == "__main__":
    sys.exit(main())
