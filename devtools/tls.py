"""The development certificate (trustme), so a camera works on
`https://<machine name>`: browsers allow getUserMedia on secure pages only."""

from __future__ import annotations

import datetime
import ipaddress
import socket
from pathlib import Path
from typing import NamedTuple

import trustme
from cryptography import x509

DAYS = 825  # the longest validity Apple platforms accept for a TLS certificate
RENEW = datetime.timedelta(days=30)
LOOPBACK = ipaddress.ip_address("127.0.0.1")


class TlsFiles(NamedTuple):
    cert: Path
    key: Path
    names: tuple[str, ...]
    authority: Path  # what a browser may be told to trust


def dev_cert(var_dir: Path, names: tuple[str, ...] | None = None) -> TlsFiles:
    """var_dir/tls/dev-{cert,key}.pem for `names` (default: host name, FQDN,
    localhost) and 127.0.0.1, issued anew when missing, expiring or not
    covering them; the authority in var_dir/tls/dev-ca.pem."""
    if not names:
        found = (name.strip().lower() for name in (socket.gethostname(), socket.getfqdn()))
        names = tuple(dict.fromkeys(name for name in (*found, "localhost") if name))
    home = var_dir / "tls"
    files = TlsFiles(home / "dev-cert.pem", home / "dev-key.pem", names, home / "dev-ca.pem")
    if files.key.exists() and files.authority.exists() and _still_good(files):
        return files
    home.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA(organization_name="Live Studio development")
    until = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=DAYS)
    leaf = ca.issue_cert(*names, str(LOOPBACK), common_name=names[0], not_after=until)
    files.key.touch(mode=0o600)
    files.key.chmod(0o600)
    leaf.private_key_pem.write_to_path(str(files.key))
    leaf.cert_chain_pems[0].write_to_path(str(files.cert))
    ca.cert_pem.write_to_path(str(files.authority))
    return files


def _still_good(files: TlsFiles) -> bool:
    try:
        cert = x509.load_pem_x509_certificate(files.cert.read_bytes())
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (OSError, ValueError, x509.ExtensionNotFound):
        return False
    fresh = cert.not_valid_after_utc - datetime.datetime.now(datetime.UTC) > RENEW
    named = set(san.get_values_for_type(x509.DNSName)) >= set(files.names)
    return fresh and named and LOOPBACK in san.get_values_for_type(x509.IPAddress)
