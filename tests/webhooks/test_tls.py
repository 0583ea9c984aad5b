"""HTTPS deliveries: the connection goes to the address that was checked,
yet TLS still names the URL's host (SNI, certificate check), so pinning the
address never weakens certificate verification."""

from __future__ import annotations

import ssl
import subprocess

import pytest

from tests.webhook_receiver import serve
from tests.webhooks.conftest import run_worker


def _openssl(command: str, cwd) -> None:
    argv = ["openssl", *command.split()]
    subprocess.run(argv, cwd=cwd, check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    """A throwaway CA and a server certificate for the name `localhost` only."""
    directory = tmp_path_factory.mktemp("tls")
    _openssl(
        "req -x509 -newkey rsa:2048 -nodes -days 1 -keyout ca.key -out ca.pem"
        " -subj /CN=webhook-test-ca -addext basicConstraints=critical,CA:TRUE"
        " -addext keyUsage=critical,keyCertSign,cRLSign",
        directory,
    )
    (directory / "leaf.ext").write_text(
        "subjectAltName=DNS:localhost\nextendedKeyUsage=serverAuth\n"
        "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n"
    )
    _openssl(
        "req -newkey rsa:2048 -nodes -keyout leaf.key -out leaf.csr -subj /CN=localhost",
        directory,
    )
    _openssl(
        "x509 -req -in leaf.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 1"
        " -out leaf.pem -extfile leaf.ext",
        directory,
    )
    return directory


@pytest.fixture()
def https_receiver(certs):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certs / "leaf.pem", certs / "leaf.key")
    with serve(tls=context) as receiver:
        yield receiver


def _deliver(api, redis, url: str) -> dict:
    reply = api.post("/webhooks", {"url": url, "events": ["stream.live"]})
    assert reply.status_code == 201, reply.get_json()
    webhook_id = reply.get_json()["id"]
    api.post(f"/webhooks/{webhook_id}/test")
    run_worker(redis)
    [entry] = api.get(f"/webhooks/{webhook_id}/deliveries").get_json()["deliveries"]
    return entry


def test_https_to_a_name_is_verified_against_that_name(
    webhook_app, db, redis, creator_api, https_receiver, certs, monkeypatch
):
    """https://localhost:<port>: connected to the checked loopback address,
    the certificate for `localhost` (from a CA the system trusts) verifies."""
    monkeypatch.setenv("SSL_CERT_FILE", str(certs / "ca.pem"))
    _, api = creator_api()
    url = https_receiver.url.replace("127.0.0.1", "localhost")
    entry = _deliver(api, redis, url)
    assert (entry["status_code"], entry["ok"]) == (200, True)
    [request] = https_receiver.requests
    assert request.headers["Host"] == url.split("/")[2]


def test_an_untrusted_certificate_is_refused(webhook_app, db, redis, creator_api, https_receiver):
    """The same server without its CA trusted: TLS fails, nothing is posted."""
    _, api = creator_api()
    entry = _deliver(api, redis, https_receiver.url.replace("127.0.0.1", "localhost"))
    assert entry["status_code"] is None and entry["error"].startswith("TLS failed")
    assert https_receiver.requests == []


def test_a_certificate_for_another_name_is_refused(
    webhook_app, db, redis, creator_api, https_receiver, certs, monkeypatch
):
    """https://127.0.0.1:<port> with a certificate for `localhost` only:
    the host of the URL is what is checked, so this fails."""
    monkeypatch.setenv("SSL_CERT_FILE", str(certs / "ca.pem"))
    _, api = creator_api()
    entry = _deliver(api, redis, https_receiver.url)
    assert entry["status_code"] is None and entry["error"].startswith("TLS failed")
    assert https_receiver.requests == []
