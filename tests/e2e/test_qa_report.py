"""The QA suite (tests/e2e/qa) against a deliberately broken studio: this
stack with its upload workers stopped, so nothing reaches the CDN. The run
must fail with a message a person can act on, keep a Playwright trace and a
screenshot of the failing test, write JUnit XML and an HTML report, and
still delete what it created."""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

from tests.conftest import PASSWORD, ROOT


def test_a_broken_studio_gives_a_readable_report_with_a_trace(studio_stack, tmp_path: Path):
    email = studio_stack.create_user()
    out = tmp_path / "e2e"
    env = {
        **os.environ,
        "BASE_URL": studio_stack.base_url,
        "E2E_EMAIL": email,
        "E2E_PASSWORD": PASSWORD,
        "E2E_TIMEOUT_SCALE": "0.4",
    }
    studio_stack.stop_workers()
    try:
        run = subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                "-p",
                "no:cacheprovider",
                "-q",
                "tests/e2e/qa/test_publish.py::test_obs_publish_plays_live_and_then_as_a_replay",
                "--tracing",
                "retain-on-failure",
                "--screenshot",
                "only-on-failure",
                "--output",
                str(out / "artifacts"),
                "--junitxml",
                str(out / "junit.xml"),
                "--html",
                str(out / "report.html"),
                "--self-contained-html",
            ],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
    finally:
        studio_stack.start_workers()

    assert run.returncode == 1, run.stdout[-2000:] + run.stderr[-2000:]
    # Our own run's report, not untrusted input.
    failure = ET.parse(out / "junit.xml").getroot().find(".//testcase/failure")  # noqa: S314
    assert failure is not None
    message = failure.get("message", "")
    assert "the player did not play" in message and "upload workers" in message, message
    assert "Timeout" not in message.split("\n")[0]
    traces = list((out / "artifacts").rglob("trace.zip"))
    screenshots = list((out / "artifacts").rglob("*.png"))
    assert traces and screenshots, sorted(p.name for p in (out / "artifacts").rglob("*"))
    assert "the player did not play" in (out / "report.html").read_text()

    with studio_stack.login(email) as session:
        streams = session.get(f"{studio_stack.base_url}/streams", timeout=10).text
    assert "QA e2e" not in streams, "the failed run left its stream behind"
