"""The QA suite's view of a studio: a `Target` (its origin and a creator
account) and a logged-in `Creator`, either from BASE_URL / E2E_EMAIL /
E2E_PASSWORD (any running studio) or from the stack tests/e2e/conftest.py
starts itself. Everything a run creates is deleted at the end, even after a
failure; on failure the browser console of the test is written next to
pytest-playwright's trace and screenshot (`--output`)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.e2e.golive.conftest import MEDIA_ARGS
from tests.e2e.qa.target import Creator, Target, seconds

EXPECT_TIMEOUT_MS = 15_000


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "read_mostly: safe against production (creates only a stream, then deletes it)"
    )


@pytest.fixture(scope="session")
def qa_target(request) -> Target:
    base_url = os.environ.get("BASE_URL", "").strip().rstrip("/")
    insecure = os.environ.get("E2E_INSECURE", "").strip() in ("1", "true", "yes")
    expect.set_options(timeout=seconds(EXPECT_TIMEOUT_MS / 1000) * 1000)
    if base_url:
        email = os.environ.get("E2E_EMAIL", "").strip()
        password = os.environ.get("E2E_PASSWORD", "")
        if not email or not password:
            raise pytest.UsageError("BASE_URL needs E2E_EMAIL and E2E_PASSWORD (a creator account)")
        return Target(base_url, email, password, verify_tls=not insecure)
    stack = request.getfixturevalue("studio_stack")
    from tests.conftest import PASSWORD

    return Target(stack.base_url, stack.create_user(), PASSWORD)


@pytest.fixture(scope="session")
def creator(qa_target):
    """The creator, logged in through the pages, with an API token of this
    run; streams and token are removed when the session ends."""
    person = Creator(qa_target)
    person.log_in()
    person.make_token()
    yield person
    left = person.close()
    assert not left, f"could not clean up on {qa_target.base_url}: {left}"


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    """Debian's Chromium with a fake camera and microphone (the browser
    go-live check), and the target's own certificate accepted when asked."""
    args = list(browser_type_launch_args.get("args") or [])
    args += [arg for arg in MEDIA_ARGS if arg not in args]
    if os.environ.get("E2E_INSECURE", "").strip() in ("1", "true", "yes"):
        args.append("--ignore-certificate-errors")
    return {**browser_type_launch_args, "executable_path": "/usr/bin/chromium", "args": args}


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args):
    insecure = os.environ.get("E2E_INSECURE", "").strip() in ("1", "true", "yes")
    return {**browser_context_args, "ignore_https_errors": insecure}


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    setattr(item, f"qa_{report.when}", report)
    return report


@pytest.fixture(autouse=True)
def browser_console(request, pytestconfig):
    """Keep what every page of the test printed to its console; written to
    the test's output folder when the test fails."""
    lines: list[str] = []
    if "context" in request.fixturenames:
        context = request.getfixturevalue("context")
        context.on("console", lambda message: lines.append(f"[{message.type}] {message.text}"))
        context.on("weberror", lambda error: lines.append(f"[pageerror] {error.error}"))
    yield lines
    report = getattr(request.node, "qa_call", None)
    if report is not None and report.failed and lines:
        output = Path(pytestconfig.getoption("output", "test-results"))
        folder = output / re.sub(r"[^A-Za-z0-9_.-]+", "-", request.node.nodeid)[:150]
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "console.txt").write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="session")
def browser(browser_type, browser_type_launch_args):
    """A Chromium of the suite's own, launched with the arguments above (the
    session browser of other e2e tests may run without a fake camera)."""
    launched = browser_type.launch(**browser_type_launch_args)
    yield launched
    launched.close()


@pytest.fixture()
def rtmp_publisher():
    """`start(url)`: an OBS-like publisher (ffmpeg: test pattern and tone,
    H.264/AAC, 2 s keyframes, real time) to the URL the API handed out;
    every one still running is stopped after the test."""
    running: list[subprocess.Popen] = []

    def start(url: str) -> subprocess.Popen:
        process = subprocess.Popen(
            [
                "ffmpeg",
                "-hide_banner",
                "-loglevel",
                "error",
                "-re",
                "-f",
                "lavfi",
                "-i",
                "testsrc2=size=640x360:rate=30",
                "-f",
                "lavfi",
                "-i",
                "sine=frequency=440:sample_rate=44100",
                "-c:v",
                "libx264",
                "-preset",
                "veryfast",
                "-tune",
                "zerolatency",
                "-g",
                "60",
                "-keyint_min",
                "60",
                "-b:v",
                "800k",
                "-c:a",
                "aac",
                "-b:a",
                "96k",
                "-f",
                "flv",
                url,
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        running.append(process)
        return process

    yield start
    for process in running:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
