"""How `make dev` starts SRS 5 (`SRS_BIN=/path/to/objs/srs make dev`).

`srs_launch` builds everything SRS is handed: the command line, the working
directory and the environment (srs/srs.conf reads its ports, paths, hook URLs
and `$CANDIDATE` from there, srs5-contract.md §5.3); make dev runs it
under honcho.

SRS resolves what the config leaves relative against its working directory:
the pid file (`./objs/srs.pid` unless `SRS_PID` or a `pid` line says
otherwise; SRS exits with `code=1034(PidFileAcquire)` when it cannot open it)
and the server id file next to it. So SRS runs in var/srs and its pid file
lives in var/run, both created here.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from devtools.process import ROOT, free_port

CONF = ROOT / "srs" / "srs.conf"
# SRS through a filter that takes secrets out of its console log (compose too).
REDACTED_RUN = ROOT / "srs" / "run-redacted.sh"
HOOK_EVENTS = ("CONNECT", "CLOSE", "PUBLISH", "UNPUBLISH", "PLAY", "STOP", "DVR", "HLS")
# At `trace` (SRS's default) every callback's URL (with the hook token) and
# body (with the publisher's secret) is logged; `error` keeps them out of the
# log for accepted callbacks (docs/runbook.md, "SRS log level").
DEFAULT_LOG_LEVEL = "error"


@dataclass(frozen=True, kw_only=True)
class SrsLaunch:
    """What SRS is started with, and where it listens and writes."""

    argv: list[str]
    env: dict[str, str]
    cwd: Path
    pid_path: Path
    log_path: Path
    rtmp_port: int
    api_port: int
    rtc_port: int
    exporter_port: int

    @property
    def rtmp_url(self) -> str:
        return f"rtmp://127.0.0.1:{self.rtmp_port}/live"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"


def srs_launch(
    var_dir: Path,
    srs_bin: str,
    hook_url: str,
    hls_dir: Path,
    *,
    api_port: int | None = None,
    environ: Mapping[str, str] | None = None,
) -> SrsLaunch:
    """The command line, working directory and environment for SRS 5 with
    srs/srs.conf; creates the directories SRS writes to.

    `environ` (default os.environ) is passed on; CANDIDATE (the address
    browsers reach for WebRTC, default 127.0.0.1) and SRS_LOG_LEVEL (default
    `error`) are read from it."""
    environ = os.environ if environ is None else environ
    var_dir = var_dir.resolve()
    cwd, run_dir, log_dir = var_dir / "srs", var_dir / "run", var_dir / "logs"
    for directory in (cwd, run_dir, log_dir, hls_dir):
        directory.mkdir(parents=True, exist_ok=True)
    rtmp, rtc = free_port(1935), free_port(8000)
    api, exporter = api_port or free_port(1985), free_port(9972)
    candidate = environ.get("CANDIDATE") or "127.0.0.1"
    # A v2 level (log4j names) would win over srs_log_level in SRS 5.
    ignored = {"SRS_SRS_LOG_LEVEL_V2", "SRS_LOG_LEVEL_V2"}
    env = {
        **{key: value for key, value in environ.items() if key not in ignored},
        "SRS_BIN": srs_bin,  # for srs/run-redacted.sh
        "SRS_PID": str(run_dir / "srs.pid"),
        "SRS_DAEMON": "off",
        "SRS_SRS_LOG_TANK": "console",
        "SRS_SRS_LOG_LEVEL": environ.get("SRS_LOG_LEVEL") or DEFAULT_LOG_LEVEL,
        "SRS_LISTEN": str(rtmp),
        "SRS_HTTP_API_LISTEN": str(api),
        "SRS_RTC_SERVER_LISTEN": str(rtc),
        "SRS_RTC_SERVER_TCP_LISTEN": str(rtc),
        "SRS_EXPORTER_LISTEN": str(exporter),
        # srs.conf reads `candidate $CANDIDATE;`; the override says it too.
        "CANDIDATE": candidate,
        "SRS_RTC_SERVER_CANDIDATE": candidate,
        "SRS_VHOST_HLS_HLS_PATH": str(hls_dir.resolve()),
        "SRS_VHOST_HTTP_HOOKS_ENABLED": "on",
    }
    for event in HOOK_EVENTS:
        env[f"SRS_VHOST_HTTP_HOOKS_ON_{event}"] = hook_url
    return SrsLaunch(
        argv=["bash", str(REDACTED_RUN), "-c", str(CONF)],
        env=env,
        cwd=cwd,
        pid_path=run_dir / "srs.pid",
        log_path=log_dir / "srs.log",
        rtmp_port=rtmp,
        api_port=api,
        rtc_port=rtc,
        exporter_port=exporter,
    )
