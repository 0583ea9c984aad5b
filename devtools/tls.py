"""A self-signed certificate for development, so that a camera works on
`https://<machine name>` (browsers only allow getUserMedia on a secure page).

`self_signed_cert(var_dir)` returns the certificate and key under
var_dir/tls/, creating them with openssl on first use and again when the
machine's name changed or the certificate is about to expire. The names in
it (subjectAltName): the machine's host name and FQDN, localhost and
127.0.0.1.

Production uses real certificates: see docs/tls.md.
"""

from __future__ import annotations

import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

DAYS = 825  # the longest validity Apple platforms accept for a TLS certificate
RENEW_SECONDS = 30 * 24 * 3600


class TlsError(RuntimeError):
    """openssl is missing or failed."""


@dataclass(frozen=True)
class TlsFiles:
    cert: Path
    key: Path
    names: tuple[str, ...]


def machine_names() -> tuple[str, ...]:
    """DNS names the certificate covers: host name, FQDN, localhost."""
    names = (name.strip().lower() for name in (socket.gethostname(), socket.getfqdn()))
    return tuple(dict.fromkeys(name for name in (*names, "localhost") if name))


def self_signed_cert(var_dir: Path, names: tuple[str, ...] | None = None) -> TlsFiles:
    """The development certificate, (re)generated when missing, expiring or
    not covering `names` (default: machine_names())."""
    names = names or machine_names()
    tls_dir = var_dir / "tls"
    cert, key = tls_dir / "dev-cert.pem", tls_dir / "dev-key.pem"
    if cert.exists() and key.exists() and _still_good(cert, names):
        return TlsFiles(cert, key, names)
    tls_dir.mkdir(parents=True, exist_ok=True)
    san = ",".join([*(f"DNS:{name}" for name in names), "IP:127.0.0.1"])
    subject = f"/CN={names[0]}/O=Live Studio development"
    request = ["req", "-x509", "-newkey", "rsa:2048", "-sha256", "-nodes", "-days", str(DAYS)]
    request += ["-subj", subject, "-addext", f"subjectAltName={san}"]
    request += ["-addext", "extendedKeyUsage=serverAuth", "-keyout", str(key), "-out", str(cert)]
    _openssl(*request)
    key.chmod(0o600)
    return TlsFiles(cert, key, names)


def _still_good(cert: Path, names: tuple[str, ...]) -> bool:
    try:
        _openssl("x509", "-in", str(cert), "-noout", "-checkend", str(RENEW_SECONDS))
        text = _openssl("x509", "-in", str(cert), "-noout", "-ext", "subjectAltName")
    except TlsError:
        return False
    return all(f"DNS:{name}" in text for name in names) and "IP Address:127.0.0.1" in text


def _openssl(*args: str) -> str:
    try:
        done = subprocess.run(
            ["openssl", *args], capture_output=True, text=True, timeout=60, check=False
        )
    except FileNotFoundError as exc:
        raise TlsError("openssl not found: apt-get install openssl") from exc
    if done.returncode != 0:
        raise TlsError(f"openssl {args[0]} failed: {done.stderr.strip()[-500:]}")
    return done.stdout


if __name__ == "__main__":
    files = self_signed_cert(Path(__file__).resolve().parent.parent / "var")
    print(f"{files.cert}\n{files.key}\nnames: {', '.join(files.names)}, 127.0.0.1")
