#!/usr/bin/env python3
"""SRS 5 start-up TEST DOUBLE: an executable to pass as SRS_BIN.

SRS cannot run on this machine. This double does what SRS 5.0.216 does when
it starts (srs5-contract.md §0, §5.3), so that `make dev`'s SRS start can run
for real:

- reads the config named by `-c` (SRS_CONFIG_FILE wins) and exits 1 if it
  cannot;
- opens the pid file where SRS would: SRS_PID, else the config's `pid`, else
  `./objs/srs.pid` relative to its working directory; if that fails it exits
  1 with `code=1034(PidFileAcquire)` like SRS; it locks the file and writes
  its pid; the server id file goes next to it (`.pid` -> `.id`) unless
  SRS_SERVER_ID is set;
- resolves each `$NAME` the config reads from the environment (SRS falls
  back to `*` when one is unset: the double says so at warn level);
- listens (TCP) on the RTMP, HTTP API, WebRTC-TCP and exporter ports of the
  config, overridden by SRS_LISTEN, SRS_HTTP_API_LISTEN,
  SRS_RTC_SERVER_TCP_LISTEN and SRS_EXPORTER_LISTEN;
- logs to stdout (console tank) at SRS_SRS_LOG_LEVEL or the config's
  `srs_log_level` (default trace); SIGTERM/SIGINT end it with 0.

Nothing else (no RTMP, no hooks). Standard library only.
"""

from __future__ import annotations

import fcntl
import os
import re
import signal
import socket
import sys
import time

LEVELS = ["verbose", "info", "trace", "warn", "error"]


def parse(text: str) -> dict[str, str]:
    """Directives as dotted paths -> their first argument (`http_api.listen`)."""
    found: dict[str, str] = {}
    path: list[str] = []
    words: list[str] = []
    for line in text.splitlines():
        for token in re.findall(r"[^\s;{}]+|[;{}]", line):
            if token.startswith("#"):
                break
            if token == ";":
                found[".".join([*path, words[0]])] = words[1] if len(words) > 1 else ""
                words = []
            elif token == "{":
                path.append(words[0])
                words = []
            elif token == "}":
                path.pop()
            else:
                words.append(token)
    return found


def main(argv: list[str]) -> int:
    conf_path = os.environ.get("SRS_CONFIG_FILE") or (
        argv[argv.index("-c") + 1] if "-c" in argv else "conf/srs.conf"
    )
    level = os.environ.get("SRS_SRS_LOG_LEVEL") or "trace"

    def log(at: str, message: str) -> None:
        if LEVELS.index(at) >= LEVELS.index(level if level in LEVELS else "trace"):
            print(
                f"[{time.strftime('%F %T')}][{at.capitalize()}][{os.getpid()}] {message}",
                flush=True,
            )

    try:
        conf = parse(open(conf_path).read())  # noqa: SIM115
    except OSError as error:
        log("error", f"code=1023(ConfigInvalid) : open config file={conf_path}: {error}")
        return 1
    level = os.environ.get("SRS_SRS_LOG_LEVEL") or conf.get("srs_log_level", "trace")
    for key, value in conf.items():
        for name in re.findall(r"\$(\w+)", value):
            if not os.environ.get(name):
                log("warn", f"{key} reads ${name}, which is not set: using *")

    pid_path = os.environ.get("SRS_PID") or conf.get("pid") or "./objs/srs.pid"
    try:
        fd = os.open(pid_path, os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as error:
        log("error", f"code=1034(PidFileAcquire) : open pid file={pid_path}: {error}")
        return 1
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}".encode())
    if not os.environ.get("SRS_SERVER_ID"):
        with open(re.sub(r"\.pid$", "", pid_path) + ".id", "w") as id_file:
            id_file.write("vid-double")
    log("trace", f"write pid={os.getpid()} to {pid_path}")

    ports = {
        "rtmp": os.environ.get("SRS_LISTEN") or conf.get("listen"),
        "api": os.environ.get("SRS_HTTP_API_LISTEN") or conf.get("http_api.listen"),
        "rtc-tcp": os.environ.get("SRS_RTC_SERVER_TCP_LISTEN") or conf.get("rtc_server.tcp.listen"),
        "exporter": os.environ.get("SRS_EXPORTER_LISTEN") or conf.get("exporter.listen"),
    }
    sockets = []
    for what, port in ports.items():
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", int(port)))
        except OSError as error:
            log("error", f"code=1054(SocketBind) : {what} listen at {port}: {error}")
            return 1
        sock.listen(16)
        sockets.append(sock)
        log("trace", f"{what} listen at tcp://127.0.0.1:{port}")

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    signal.signal(signal.SIGINT, lambda *_: sys.exit(0))
    while True:
        signal.pause()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
