"""How `make dev` starts SRS 5 (`SRS_BIN=/path/to/objs/srs make dev`): its
command line, working directory and environment (srs/dev.env.template, read
by srs/srs.conf). SRS opens its pid file (`./objs/srs.pid` unless SRS_PID
says otherwise; it exits with `code=1034(PidFileAcquire)` when it cannot)
relative to its working directory: so SRS runs in var/srs, its pid file in
var/run."""

from __future__ import annotations

import io
import os
from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple

from dotenv import dotenv_values

from devtools.process import ROOT, free_port, render

CONF = ROOT / "srs" / "srs.conf"
ENV_TEMPLATE = ROOT / "srs" / "dev.env.template"
# SRS through a filter that takes secrets out of its console log (compose too).
REDACTED_RUN = ROOT / "srs" / "run-redacted.sh"
# A v2 level (log4j names) would win over srs_log_level in SRS 5.
IGNORED = ("SRS_SRS_LOG_LEVEL_V2", "SRS_LOG_LEVEL_V2")


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
    """SRS 5 with srs/srs.conf; creates the directories SRS writes to.
    `environ` (default os.environ) is passed on; CANDIDATE (the address
    browsers reach for WebRTC, default 127.0.0.1) and SRS_LOG_LEVEL (default
    `error`) are read from it."""
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
    settings = dotenv_values(stream=io.StringIO(render(ENV_TEMPLATE, values)), interpolate=False)
    passed_on = {key: value for key, value in environ.items() if key not in IGNORED}
    env = {**passed_on, **settings, "SRS_BIN": srs_bin}  # SRS_BIN: for run-redacted.sh
    return SrsLaunch(["bash", str(REDACTED_RUN), "-c", str(CONF)], env, cwd, ports)
