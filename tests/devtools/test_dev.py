"""`make dev` (devtools/dev.py): how it starts SRS, what it runs and
supervises, and which database and Redis a checkout gets."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import urllib.parse
from pathlib import Path

import psutil
import psycopg
import yaml

from devtools import dev
from devtools.process import ROOT, Service, executor, start, stop
from devtools.services import ensure_postgres, ensure_redis
from tests.media.test_srs_conf import parse, values
from tests.polling import wait_until
from tests.stack import Simple, Tcp, drop_database

SRS_DOUBLE = Path(__file__).resolve().parent / "srs_start_double.py"
HOOK = "http://127.0.0.1:5000/hooks/srs?token=dev-hook-token"


def conf_variables() -> set[str]:
    """Every `$NAME` srs/srs.conf reads from the environment."""
    found: set[str] = set()

    def walk(entries: list) -> None:
        for _name, args, children in entries:
            found.update(m for arg in args for m in re.findall(r"\$(\w+)", arg))
            if children:
                walk(children)

    walk(parse(dev.SRS_CONF.read_text()))
    return found


# --------------------------------------------------------------------------
# SRS: what make dev hands it


def test_srs_gets_a_writable_pid_path_working_directory_and_every_config_variable(
    tmp_path: Path,
) -> None:
    """SRS runs in var/srs with its pid file in var/run (not ./objs of the
    project root, where SRS 5 exits with PidFileAcquire) and finds every
    `$VAR` of srs/srs.conf set."""
    launch = dev.srs_launch(
        tmp_path / "var", "/opt/srs/objs/srs", HOOK, tmp_path / "hls", environ={"PATH": "/usr/bin"}
    )
    # SRS itself through the script that keeps secrets out of its log.
    assert launch.argv == ["bash", str(dev.REDACTED_RUN), "-c", str(ROOT / "srs" / "srs.conf")]
    assert launch.env["SRS_BIN"] == "/opt/srs/objs/srs"
    assert launch.cwd == (tmp_path / "var" / "srs").resolve() and launch.cwd.is_dir()
    pid_path = Path(launch.env["SRS_PID"])
    assert pid_path == (tmp_path / "var" / "run" / "srs.pid").resolve()
    assert pid_path.parent.is_dir() and os.access(pid_path.parent, os.W_OK)
    assert launch.env["SRS_SRS_LOG_TANK"] == "console" and launch.env["SRS_DAEMON"] == "off"
    variables = conf_variables()
    assert variables == {"CANDIDATE"}  # if the config reads more, make dev must set them
    assert all(launch.env.get(name) for name in variables)
    hls = Path(launch.env["SRS_VHOST_HLS_HLS_PATH"])
    assert hls.is_dir() and os.access(hls, os.W_OK)
    hooks = {key: value for key, value in launch.env.items() if "_HOOKS_ON_" in key}
    events = {"CONNECT", "CLOSE", "PUBLISH", "UNPUBLISH", "PLAY", "STOP", "DVR", "HLS"}
    assert hooks == {f"SRS_VHOST_HTTP_HOOKS_ON_{event}": HOOK for event in events}
    assert len(set(launch.ports.values())) == 4
    assert launch.env["SRS_LISTEN"] == str(launch.ports["RTMP_PORT"])
    assert launch.env["SRS_HTTP_API_LISTEN"] == str(launch.ports["API_PORT"])
    assert launch.env["SRS_RTC_SERVER_TCP_LISTEN"] == str(launch.ports["RTC_PORT"])


def test_srs_start_double_refuses_a_pid_file_it_cannot_open(tmp_path: Path) -> None:
    """The double fails as SRS 5 did under `make dev` before: from the project
    root with no SRS_PID, ./objs/srs.pid cannot be opened."""
    assert not (ROOT / "objs").exists()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SRS_")}
    result = subprocess.run(
        [str(SRS_DOUBLE), "-c", str(dev.SRS_CONF)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 1
    assert "code=1034(PidFileAcquire)" in result.stdout
    assert "open pid file=./objs/srs.pid" in result.stdout


def test_srs_starts_with_what_make_dev_hands_it(tmp_path: Path) -> None:
    """With make dev's command line, directory and environment, SRS (its
    start-up test double) writes its pid file, listens on the RTMP and API
    ports, warns about no unset variable, and stops on SIGTERM."""
    launch = dev.srs_launch(
        tmp_path / "var",
        str(SRS_DOUBLE),
        HOOK,
        tmp_path / "hls",
        environ={**os.environ, "SRS_LOG_LEVEL": "trace"},
    )
    # The double listens on the RTMP port, then on the API port.
    log_path, api_port = tmp_path / "srs.log", launch.ports["API_PORT"]
    options = {"env": launch.env, "cwd": launch.cwd, "host": "127.0.0.1", "timeout": 30}
    double = executor(Tcp, launch.argv, log_path, port=api_port, **options)
    process = start(double, "SRS").process
    try:
        socket.create_connection(("127.0.0.1", launch.ports["RTMP_PORT"]), timeout=5).close()
        assert Path(launch.env["SRS_PID"]).read_text() == str(process.pid)
        # The log goes through sed (srs/run-redacted.sh), which may write it
        # after the double listens.
        wait_until(lambda: "[Trace]" in log_path.read_text(), timeout=30, what="SRS's log")
        assert "[Warn]" not in log_path.read_text()
    finally:
        stop(double)
    assert process.returncode == 0


# --------------------------------------------------------------------------
# SRS's log level: no hook token, no stream secret in srs.log


def test_srs_logs_at_error_level_so_callback_urls_and_bodies_are_not_written(
    tmp_path: Path,
) -> None:
    """SRS 5 logs each accepted callback (`http: on_publish ok, ... url=...,
    request=...`) with srs_trace, and failed unpublish/close/stop/hls
    callbacks with srs_warn: srs/srs.conf, make dev and compose all run SRS at
    `error` (the environment wins over the file, so each must say it)."""
    settings = values(parse(dev.SRS_CONF.read_text()))
    assert settings["srs_log_level"] == ["error"]
    assert "srs_log_level_v2" not in settings  # it would win over srs_log_level
    launch = dev.srs_launch(
        tmp_path / "var", "srs", HOOK, tmp_path / "hls", environ={"SRS_SRS_LOG_LEVEL_V2": "info"}
    )
    assert launch.env["SRS_SRS_LOG_LEVEL"] == "error"
    assert "SRS_SRS_LOG_LEVEL_V2" not in launch.env
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    level = compose["services"]["srs"]["environment"]["SRS_SRS_LOG_LEVEL"]
    assert level == "${SRS_LOG_LEVEL:-error}"


def test_compose_gives_srs_a_pid_path_it_can_write() -> None:
    """Compose runs SRS as a non-root user: its pid file must not be ./objs."""
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert compose["services"]["srs"]["environment"]["SRS_PID"].startswith("/tmp/")


# --------------------------------------------------------------------------
# Supervision


def test_supervisor_reports_a_child_that_dies_and_stops_the_others(tmp_path: Path) -> None:
    """A child killed from outside is named at once with its exit code and
    log path; the other children are stopped; run() returns."""
    output = tmp_path / "terminal.txt"
    script = "import time; print('up', flush=True); time.sleep(120)"
    with open(output, "w") as terminal:
        supervisor = dev.Supervisor(tmp_path / "logs", output=terminal, kill_wait=5)
        victim_log = supervisor.add("victim", [sys.executable, "-c", script], os.environ)
        supervisor.add("bystander", [sys.executable, "-c", script], os.environ)
        pids: dict[str, int] = {}

        def kill_victim() -> None:
            def ready() -> bool:  # its output written, every child's pid recorded
                started = all("pid" in state for state in supervisor._processes.values())
                return started and "up" in victim_log.read_text()

            wait_until(ready, timeout=30)
            pids.update({name: state["pid"] for name, state in supervisor._processes.items()})
            os.kill(pids["victim"], signal.SIGKILL)

        supervisor.run(kill_victim)
    text = output.read_text()
    assert supervisor.exited == ("victim", -9)
    assert f"victim was killed by SIGKILL (exit code -9); its log: {victim_log}" in text
    assert "bystander stopped" in text
    assert not any(psutil.pid_exists(pid) for pid in pids.values())


def test_supervisor_stops_everything_when_a_watched_service_dies(tmp_path: Path) -> None:
    """A service started before the children (nginx, a private PostgreSQL)
    that dies is reported like a child, and the children are stopped."""
    output = tmp_path / "terminal.txt"
    service_log = tmp_path / "nginx-1.log"
    service = executor(Simple, ["sleep", "120"], service_log).start()
    try:
        with open(output, "w") as terminal:
            supervisor = dev.Supervisor(tmp_path / "logs", output=terminal, kill_wait=5)
            supervisor.watch(
                Service(name="nginx-1", url="", log_path=service_log, executor=service)
            )
            supervisor.add(
                "gunicorn", [sys.executable, "-c", "import time; time.sleep(120)"], os.environ
            )
            supervisor.run(lambda: os.kill(service.process.pid, signal.SIGKILL))
    finally:
        service.kill()
    text = output.read_text()
    assert supervisor.exited == ("nginx-1", -9)
    assert f"nginx-1 was killed by SIGKILL (exit code -9); its log: {service_log}" in text
    assert "gunicorn stopped" in text


# --------------------------------------------------------------------------
# One database and one Redis per checkout


def test_two_checkouts_get_different_databases() -> None:
    """The database name comes from the checkout path: two checkouts (even
    of the same folder name) differ; one checkout always gets the same."""
    first = dev.checkout_database(Path("/work/wt/devstack"))
    second = dev.checkout_database(Path("/work/main/devstack"))
    assert first != second
    assert first == dev.checkout_database(Path("/work/wt/devstack"))
    for name in (first, second, dev.checkout_database(Path("/"))):
        assert re.fullmatch(r"[a-z_][a-z0-9_]*", name)
        assert name.startswith("studio_") and len(name) <= 63


def test_two_checkouts_get_their_own_database_and_redis(tmp_path: Path, monkeypatch) -> None:
    """Without DATABASE_URL / REDIS_URL two checkouts use different
    databases and different Redis servers."""
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("REDIS_URL", raising=False)
    started = []
    try:
        for name in ("one", "two"):
            database = dev.checkout_database(tmp_path / name / "live-studio")
            started += [ensure_postgres(tmp_path / name, database), ensure_redis(tmp_path / name)]
        pg_one, redis_one, pg_two, redis_two = started
        assert pg_one.database != pg_two.database
        assert pg_one.url.endswith("/" + pg_one.database)
        with psycopg.connect(pg_one.url) as connection:
            [(database,)] = connection.execute("SELECT current_database()")
        assert database == pg_one.database
        assert redis_one.url != redis_two.url
        assert "6379" not in redis_one.url and "6379" not in redis_two.url
    finally:
        for service in started[::2]:
            if service.executor is None:  # the machine's server: drop what we made
                drop_database(service.server_url, service.database)
        for service in reversed(started):
            service.stop()


def test_database_url_and_redis_url_win(tmp_path: Path, monkeypatch) -> None:
    """DATABASE_URL and REDIS_URL are used as given."""
    monkeypatch.setenv("DATABASE_URL", "postgresql://u@db.example:5432/mine")
    monkeypatch.setenv("REDIS_URL", "redis://cache.example:6379/5")
    postgres, redis = ensure_postgres(tmp_path, "ignored"), ensure_redis(tmp_path)
    assert postgres.url == "postgresql://u@db.example:5432/mine"
    assert redis.url == "redis://cache.example:6379/5"
    assert postgres.executor is None and redis.executor is None


# --------------------------------------------------------------------------
# The whole of `make dev`


def _descendants(pid: int) -> set[int]:
    """Every process below `pid` now."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def _cmdlines(pids: set[int]) -> list[str]:
    lines = []
    for pid in pids:
        with contextlib.suppress(OSError):  # gone meanwhile
            lines.append((Path("/proc") / str(pid) / "cmdline").read_bytes().decode())
    return [line.replace("\0", " ") for line in lines]


def test_make_dev_runs_what_production_runs_and_stops_when_srs_dies(
    tmp_path: Path, services: dict[str, str]
) -> None:
    """`python -m devtools.dev` with SRS_BIN (the SRS start-up test double):
    SRS, gunicorn with gunicorn.conf.py, the callback tier (where SRS's hook
    URL points), the workers, the watcher, the reconciler and the
    multistream relays run; when SRS
    is killed, make dev names it with its exit
    code and log, stops every process it started and exits non-zero."""
    var = tmp_path / "var"
    output = tmp_path / "make-dev.txt"
    # The test run's own database and Redis, not the checkout's (a developer's
    # make dev may be using those).
    env = {
        **os.environ,
        "DATABASE_URL": services["database_url"],
        "REDIS_URL": services["redis_url"],
        "STUDIO_DEV_VAR": str(var),
        "SRS_BIN": str(SRS_DOUBLE),
        "PYTHONUNBUFFERED": "1",
    }
    with open(output, "wb") as out:
        make_dev = subprocess.Popen(
            [sys.executable, "-m", "devtools.dev"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    children: set[int] = set()
    try:
        wait_until(
            lambda: "Live Studio is running" in output.read_text() or make_dev.poll() is not None,
            timeout=240,
        )
        assert make_dev.poll() is None, output.read_text()
        children = _descendants(make_dev.pid)
        commands = _cmdlines(children)
        # Each as the containers start it: deploy/entrypoint.sh's roles.
        web_tier = "gunicorn -c gunicorn.conf.py --bind 127.0.0.1:"
        assert any(web_tier in c for c in commands), commands
        # gunicorn's control socket is the checkout's, not ~/.gunicorn's.
        assert any(
            f"--control-socket {var.resolve() / 'run' / 'gunicorn.ctl'}" in c for c in commands
        ), commands
        assert any("workers.reconcile --loop" in c for c in commands), commands
        # Each background process (RQ's scheduler is a fork of its worker) has
        # metrics on a port of its own, not offered to the network.
        exporters = [c for c in commands if "studio.metrics_exporter" in c]
        assert all("--addr 127.0.0.1 " in c for c in exporters), exporters
        ports = {re.search(r"--port (\d+)", c)[1]: c for c in exporters}
        assert sum("rq.cli worker --url" in c for c in ports.values()) == dev.WORKERS, commands
        assert len(ports) == dev.WORKERS + 3, exporters
        assert any("workers.watcher" in c for c in commands), commands
        assert any(" workers.multistream" in c for c in commands), commands
        srs_pid = int((var / "run" / "srs.pid").read_text())
        assert srs_pid in children
        # SRS's callbacks go to the callback tier, not to the web tier's threads.
        srs_env = dict(
            entry.split("=", 1)
            for entry in (Path("/proc") / str(srs_pid) / "environ").read_text().split("\0")
            if "=" in entry
        )
        hook_url = urllib.parse.urlsplit(srs_env["SRS_VHOST_HTTP_HOOKS_ON_PUBLISH"])
        assert hook_url.path == "/hooks/srs", hook_url
        hooks_tier = f"-c gunicorn_hooks.conf.py --bind {hook_url.netloc} "
        assert any(hooks_tier in c for c in commands), commands
        for name in (
            "srs",
            "gunicorn",
            "hooks",
            "rq-worker-1",
            "watcher",
            "reconciler",
            "multistream",
        ):
            assert (var / "logs" / f"{name}.log").exists(), name

        os.kill(srs_pid, signal.SIGKILL)
        assert make_dev.wait(timeout=120) == 128 + signal.SIGKILL
        text = output.read_text()
        assert f"srs was killed by SIGKILL (exit code -9); its log: {var / 'logs' / 'srs.log'}" in (
            text
        ), text
        wait_until(lambda: not any(psutil.pid_exists(pid) for pid in children), timeout=30)
    finally:
        if make_dev.poll() is None:
            make_dev.send_signal(signal.SIGTERM)
            make_dev.wait(timeout=60)
        for pid in children:
            if psutil.pid_exists(pid):
                os.kill(pid, signal.SIGKILL)


REFUSED_LINE = (
    "[Error] serve error code=1008 : on_publish url=http://h/hooks/srs?token=HOOK-T0KEN,"
    ' request={"param":"?secret=STREAM-S3CRET","stream":"s"} ticket=T1CKET'
)


def _srs_that_logs_a_refusal(path: Path) -> Path:
    """A stand-in SRS binary that writes what SRS writes on a refused publish."""
    path.write_text(f"#!/bin/sh\necho '{REFUSED_LINE}'\n")
    path.chmod(0o755)
    return path


def test_make_dev_srs_log_has_no_hook_token_or_stream_secret(tmp_path: Path) -> None:
    """Even the error line of a refused publish reaches srs.log without the
    hook token, the key or a publish ticket (make dev's own command line)."""
    fake = _srs_that_logs_a_refusal(tmp_path / "srs")
    launch = dev.srs_launch(tmp_path / "var", str(fake), HOOK, tmp_path / "hls", environ={})
    result = subprocess.run(
        launch.argv,
        cwd=launch.cwd,
        env={**os.environ, **launch.env},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    assert "serve error" in result.stdout
    for secret in ("HOOK-T0KEN", "STREAM-S3CRET", "T1CKET"):
        assert secret not in result.stdout


def test_compose_srs_command_takes_secrets_out_of_its_log(tmp_path: Path) -> None:
    """Compose's SRS command, run as the image lays it out (conf/ mounted from
    srs/, the binary at ./objs/srs), writes the refusal line without secrets."""
    service = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["srs"]
    image = tmp_path / "usr-local-srs"
    for volume in service["volumes"]:
        source, target = volume.split(":")[:2]
        if source.startswith("./srs/"):
            destination = image / target.removeprefix("/usr/local/srs/")
            destination.parent.mkdir(parents=True, exist_ok=True)
            destination.write_bytes((ROOT / source).read_bytes())
    (image / "objs").mkdir()
    _srs_that_logs_a_refusal(image / "objs" / "srs")
    result = subprocess.run(
        service["command"], cwd=image, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stderr
    assert "serve error" in result.stdout
    for secret in ("HOOK-T0KEN", "STREAM-S3CRET", "T1CKET"):
        assert secret not in result.stdout
