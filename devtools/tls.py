"""The development certificate, so a camera works on `https://<machine name>`
(browsers allow getUserMedia on secure pages only). Production uses real
certificates: see docs/tls.md."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path
from typing import NamedTuple

from devtools.process import StackError

DAYS = 825  # the longest validity Apple platforms accept for a TLS certificate
RENEW_SECONDS = 30 * 24 * 3600


class TlsFiles(NamedTuple):
    cert: Path
    key: Path
    names: tuple[str, ...]


def self_signed_cert(var_dir: Path, names: tuple[str, ...] | None = None) -> TlsFiles:
    """var_dir/tls/dev-{cert,key}.pem for `names` (default: host name, FQDN,
    localhost) and 127.0.0.1, made anew when missing, expiring soon or not
    covering them."""
    if not names:
        found = (name.strip().lower() for name in (socket.gethostname(), socket.getfqdn()))
        names = tuple(dict.fromkeys(name for name in (*found, "localhost") if name))
    files = TlsFiles(var_dir / "tls" / "dev-cert.pem", var_dir / "tls" / "dev-key.pem", names)
    if files.cert.exists() and files.key.exists() and _still_good(files):
        return files
    files.cert.parent.mkdir(parents=True, exist_ok=True)
    san = ",".join([*(f"DNS:{name}" for name in names), "IP:127.0.0.1"])
    request = ["req", "-x509", "-newkey", "rsa:2048", "-sha256", "-nodes", "-days", str(DAYS)]
    request += ["-subj", f"/CN={names[0]}/O=Live Studio development"]
    request += ["-addext", f"subjectAltName={san}", "-addext", "extendedKeyUsage=serverAuth"]
    _openssl(*request, "-keyout", str(files.key), "-out", str(files.cert))
    files.key.chmod(0o600)
    return files


def _still_good(files: TlsFiles) -> bool:
    try:
        _openssl("x509", "-in", str(files.cert), "-noout", "-checkend", str(RENEW_SECONDS))
        text = _openssl("x509", "-in", str(files.cert), "-noout", "-ext", "subjectAltName")
    except StackError:
        return False
    return all(f"DNS:{name}" in text for name in files.names) and "IP Address:127.0.0.1" in text


def _openssl(*args: str) -> str:
    try:
        done = subprocess.run(
            ["openssl", *args], capture_output=True, text=True, timeout=60, check=False
        )
    except FileNotFoundError as exc:
        raise StackError("openssl not found: apt-get install openssl") from exc
    if done.returncode != 0:
        raise StackError(f"openssl {args[0]} failed: {done.stderr.strip()[-500:]}")
    return done.stdout
