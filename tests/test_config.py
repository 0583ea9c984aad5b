"""Settings: typed, validated at start-up, with errors that name the variable."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from studio import config
from tests.conftest import ROOT


def test_defaults_and_conversions():
    """An empty environment gives the development defaults; values are typed."""
    flask = config.from_environ({})
    assert flask["MEDIA_ENGINE"] == "nginx-rtmp"
    assert flask["HLS_FRAGMENT"] == 2.0
    settings = config.load(
        {
            "STUDIO_HLS_FRAGMENT": "1",
            "STUDIO_MEDIA_ENGINE": "SRS",
            "STUDIO_CDN_URL": "https://c/",
            "STUDIO_TURN_URLS": "turn:a, turn:b",
            "STUDIO_SECURE_COOKIES": "",
        }
    )
    flask = config.flask_config(settings)
    assert flask["HLS_FRAGMENT"] == 1.0
    assert flask["MEDIA_ENGINE"] == "srs"
    assert flask["CDN_URL"] == "https://c"
    assert flask["TURN_URLS"] == ["turn:a", "turn:b"]
    assert flask["SESSION_COOKIE_SECURE"] is False


def test_an_explicit_mapping_ignores_the_process_environment(monkeypatch):
    monkeypatch.setenv("STUDIO_GCS_BUCKET", "from-the-environment")
    assert config.from_environ({})["GCS_BUCKET"] == "studio-media"
    assert config.from_environ()["GCS_BUCKET"] == "from-the-environment"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("STUDIO_MEDIA_ENGINE", "bogus"),
        ("STUDIO_HLS_FRAGMENT", "abc"),
        ("STUDIO_HLS_FRAGMENT", "-1"),
        ("STUDIO_MAX_LIVE_PER_USER", "three"),
        ("STUDIO_RATELIMIT_LOGIN", "often"),
        ("STUDIO_SECURE_COOKIES", "maybe"),
        ("STUDIO_LOG_LEVEL", "LOUD"),
        ("STUDIO_CDN_INVALIDATE", "sometimes"),
        ("STUDIO_CDN_URL_MAP", "map/../../other"),
        ("STUDIO_GCP_PROJECT", "p?x=1"),
        ("STUDIO_COMPUTE_API_URL", "https://evil.example/path"),
    ],
)
def test_a_malformed_value_is_refused_naming_the_variable(name, value):
    with pytest.raises(config.SettingsError) as raised:
        config.load({name: value})
    assert name in str(raised.value)


@pytest.mark.parametrize(
    "name,value", [("STUDIO_MEDIA_ENGINE", "bogus"), ("STUDIO_HLS_FRAGMENT", "abc")]
)
def test_start_up_stops_with_a_message_naming_the_variable(name, value):
    """The web role's start (`flask db upgrade` / gunicorn import the app
    factory) exits non-zero and says which variable is wrong."""
    env = {**os.environ, "STUDIO_SECRET_KEY": "x", name: value}
    result = subprocess.run(
        [sys.executable, "-c", "from wsgi import app"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert name in result.stderr.splitlines()[-1], result.stderr


def test_target_keys_must_be_fernet_keys_and_are_never_echoed():
    """STUDIO_TARGET_KEYS holds Fernet keys; a malformed one stops start-up with
    the variable's name and without its value."""
    from cryptography.fernet import Fernet

    good = Fernet.generate_key().decode()
    assert config.from_environ({"STUDIO_TARGET_KEYS": f"{good}, {good}"})["TARGET_KEYS"] == [
        good,
        good,
    ]
    with pytest.raises(config.SettingsError) as error:
        config.load({"STUDIO_TARGET_KEYS": f"{good} not-a-fernet-key"})
    assert "STUDIO_TARGET_KEYS" in str(error.value)
    assert "not-a-fernet-key" not in str(error.value)
