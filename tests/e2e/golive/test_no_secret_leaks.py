"""No stream secret and no hook token in any log the stack writes or on any
process's command line (`/proc/*/cmdline` is readable by every local user),
after an RTMP publish from ffmpeg and a browser publish over the WebSocket
ingest through nginx-rtmp."""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import BrowserContext, expect

from tests.e2e.golive.harness import ffmpeg_pids
from tests.e2e.golive.pages import open_go_live
from tests.polling import wait_until


def command_lines(exclude: set[int]) -> dict[int, bytes]:
    """Every readable process command line on this machine but `exclude`'s."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) in exclude:
            continue
        try:
            found[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue  # gone meanwhile
    return found


def leaks(haystacks: dict, secrets: dict[str, str]) -> list[str]:
    return [
        f"{what} in {where}"
        for where, text in haystacks.items()
        for what, secret in secrets.items()
        if secret.encode() in text
    ]


def stack_logs(var_dir: Path, exclude: set[Path]) -> dict[Path, bytes]:
    """Every log file under the stack's directory (nginx, rtmp access log,
    gunicorn, RQ workers, watcher, PostgreSQL, Redis, bucket)."""
    return {path: path.read_bytes() for path in var_dir.rglob("*.log") if path not in exclude}


def test_no_secret_in_logs_or_command_lines(
    studio_stack, ffmpeg_publisher, context: BrowserContext
):
    """While an OBS-like ffmpeg and a browser publish, no process of the stack
    shows a stream secret or the hook token on its command line (the
    creator's own encoder is excluded: its URL is theirs); after both end, no
    log file holds either."""
    base = studio_stack.base_url
    email = studio_stack.create_user()
    obs_stream = studio_stack.create_stream(email, "From OBS")
    browser_stream = studio_stack.create_stream(email, "From the browser")
    secrets = {
        "RTMP stream secret": obs_stream.stream_key,
        "browser stream secret": browser_stream.stream_key,
        "hook token": studio_stack.hook_token,
    }

    encoder = ffmpeg_publisher.start(obs_stream.publish_url)
    golive = open_go_live(context, base, email, browser_stream.public_id)
    golive.go_live_button.click()
    expect(golive.status).to_have_text("LIVE", timeout=30_000)
    wait_until(
        lambda: studio_stack.stream_row(obs_stream.public_id)["status"] == "live",
        30,
        "the RTMP publish to go live",
    )
    assert ffmpeg_pids(browser_stream.public_id), "the relay's ffmpeg runs"

    assert leaks(command_lines(exclude={encoder.pid}), secrets) == []

    golive.stop()
    ffmpeg_publisher.stop_all()
    for stream in (obs_stream, browser_stream):
        wait_until(
            lambda stream=stream: studio_stack.stream_row(stream.public_id)["status"] == "ended",
            30,
            f"{stream.public_id} to end",
        )
    encoder_logs = set((studio_stack.var_dir / "logs").glob("ffmpeg-*.log"))
    logs = stack_logs(studio_stack.var_dir, exclude=encoder_logs)
    rtmp_access = [path for path in logs if path.name == "rtmp-access.log"]
    assert rtmp_access and obs_stream.public_id.encode() in logs[rtmp_access[0]]
    assert leaks(logs, secrets) == []
