"""Where a webhook may be sent: the URL rules and the address rules.

A webhook URL is http(s), names a host, carries no credentials and is at
most URL_MAX characters. Its host must resolve only to public addresses:
private, loopback, link-local, shared, reserved, multicast and unspecified
addresses (IPv4-mapped IPv6 included) are refused unless they lie in a
network the operator allowed (STUDIO_WEBHOOK_ALLOWED_NETWORKS). The name is
checked when the endpoint is saved and resolved again for every delivery,
which then connects to exactly the address it checked (no DNS rebinding
between the check and the connection).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

URL_MAX = 2048
IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class UnsafeUrl(ValueError):
    """The URL or the address it leads to is not allowed; the message says why."""


@dataclass(frozen=True)
class Target:
    """A checked webhook URL, split for a pinned connection."""

    scheme: str
    host: str  # the name (or literal address) as written, for TLS and Host
    port: int
    path: str  # path and query, at least "/"

    @property
    def host_header(self) -> str:
        default = 443 if self.scheme == "https" else 80
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == default else f"{host}:{self.port}"


def parse_url(url: object) -> Target:
    """Split a webhook URL; raises UnsafeUrl for anything but a plain
    http(s) URL with a host and no credentials."""
    if not isinstance(url, str) or not url.strip():
        raise UnsafeUrl("A URL is required.")
    url = url.strip()
    if len(url) > URL_MAX:
        raise UnsafeUrl(f"At most {URL_MAX} characters.")
    if any(ord(char) < 33 or ord(char) == 127 for char in url):
        raise UnsafeUrl("A URL has no spaces or control characters.")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise UnsafeUrl("Not a valid URL.") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise UnsafeUrl("Only http:// and https:// URLs are allowed.")
    if parts.username is not None or parts.password is not None:
        raise UnsafeUrl("A webhook URL may not contain a user name or password.")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise UnsafeUrl("The URL has no host.")
    try:
        host = host.encode("idna").decode("ascii")  # what DNS, TLS and Host see
    except UnicodeError:
        raise UnsafeUrl("The URL's host is not a valid name.") from None
    if parts.fragment:
        raise UnsafeUrl("A webhook URL has no #fragment.")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return Target(scheme, host, port or (443 if scheme == "https" else 80), path)


def networks(words: Iterable[str]) -> list[Network]:
    """The operator's allowed networks (validated settings)."""
    return [ipaddress.ip_network(word, strict=False) for word in words]


def address_allowed(address: IpAddress, allowed: Iterable[Network] = ()) -> bool:
    """True for a public address, or one inside an allowed network."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if any(address in network for network in allowed):
        return True
    return address.is_global and not (address.is_multicast or address.is_unspecified)


def resolve(target: Target, allowed: Iterable[Network] = ()) -> list[str]:
    """Every address the target's host has now, each one checked; raises
    UnsafeUrl if the name does not resolve or any address is not allowed."""
    allowed = list(allowed)
    try:
        literal: IpAddress | None = ipaddress.ip_address(target.host)
    except ValueError:
        literal = None
    if literal is not None:
        found = [literal]
    else:
        try:
            infos = socket.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError):
            raise UnsafeUrl(f"The host {target.host} does not resolve.") from None
        found = [ipaddress.ip_address(info[4][0].split("%", 1)[0]) for info in infos]
    if not found:
        raise UnsafeUrl(f"The host {target.host} does not resolve.")
    for address in found:
        if not address_allowed(address, allowed):
            raise UnsafeUrl(
                f"The host {target.host} is a private, loopback or link-local address "
                f"({address}): webhooks only go to public addresses."
            )
    return list(dict.fromkeys(str(address) for address in found))


def check_url(url: object, allowed: Iterable[Network] = ()) -> str:
    """The URL, stripped, if it may be a webhook; raises UnsafeUrl."""
    target = parse_url(url)
    resolve(target, allowed)
    return str(url).strip()
