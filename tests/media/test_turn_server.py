"""The TURN credentials the studio hands to browsers work against a real
coturn running deploy/coturn/turnserver.conf, and only while they are valid."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import pytest
from aioice import turn

from studio.media.ice import turn_credentials
from tests.conftest import VAR
from tests.e2e.golive.harness import run_coturn

SECRET = "turn-test-shared-secret"


@pytest.fixture(scope="module")
def coturn():
    """turnserver with the deployed config; loopback listener and relays."""
    with run_coturn(VAR / "coturn", SECRET) as running:
        yield {"server": (running.host, running.port), "relay_ports": running.relay_ports}


def allocate(server, username: str, password: str) -> tuple[str, int]:
    """A TURN allocation over UDP, as a browser makes; returns the relayed address."""

    async def run():
        transport, _ = await asyncio.wait_for(
            turn.create_turn_endpoint(asyncio.DatagramProtocol, server, username, password),
            timeout=10,
        )
        relayed = transport.get_extra_info("sockname")
        transport.close()
        return relayed

    # A thread of its own: Playwright's sync API may own this thread's loop.
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, run()).result()


def test_studio_credentials_allocate_a_relay(coturn):
    credentials = turn_credentials(SECRET, user_id=7, ttl=600)
    host, port = allocate(coturn["server"], credentials["username"], credentials["credential"])
    assert host == "127.0.0.1"
    assert port in coturn["relay_ports"]  # an address coturn relays from


def test_credentials_signed_with_another_secret_are_refused(coturn):
    credentials = turn_credentials("not-the-secret", user_id=7, ttl=600)
    with pytest.raises(Exception, match="401|Unauthorized"):
        allocate(coturn["server"], credentials["username"], credentials["credential"])


def test_expired_credentials_are_refused(coturn):
    """The expiry in the username is enforced by coturn itself."""
    credentials = turn_credentials(SECRET, user_id=7, ttl=-60)
    with pytest.raises(Exception, match="401|Unauthorized"):
        allocate(coturn["server"], credentials["username"], credentials["credential"])
