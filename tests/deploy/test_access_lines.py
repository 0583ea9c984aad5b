"""No tier writes access lines (the app logs each request itself), and none
builds them either: with `logconfig_dict` set, gunicorn's own logger would
put together every request's access-log fields only to drop them."""

from __future__ import annotations

import pytest

from tests.deploy.gunicorn_server import probe_config

PROBE = """
import runpy, sys
from gunicorn.config import Config

conf = runpy.run_path(sys.argv[1])
cfg = Config()
for key in ("accesslog", "logconfig_dict", "logger_class"):
    cfg.set(key, conf[key])
logger = cfg.logger_class(cfg)
built = []
logger.atoms = lambda *args: built.append(args) or {}
logger.access(None, None, {}, None)
print(len(built))
"""


@pytest.mark.parametrize(
    "config", ["gunicorn.conf.py", "gunicorn_hooks.conf.py", "gunicorn_sockets.conf.py"]
)
def test_a_tier_builds_no_access_line(config):
    assert probe_config(PROBE, config).split() == ["0"]
