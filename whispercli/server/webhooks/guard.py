"""The SSRF guard: which webhook (and ``file_url``) URLs the server may contact.

A URL is checked, and its host resolved, once per use; the caller then connects to one of the
addresses returned here and nowhere else, so a name that resolves differently a moment later
(DNS rebinding) cannot steer the request. Refused: schemes other than http(s), user info in
the URL, and any address that is not global (private, loopback, link-local, shared,
reserved, documentation, unspecified) unless the policy allows it. Multicast and the cloud
metadata addresses are refused always: nothing that answers HTTP lives there. An IPv6 address
that carries an IPv4 address (IPv4-mapped, -translated and -compatible, NAT64, 6to4, Teredo)
is judged by that IPv4 address as well, and local-use NAT64 is refused. An address literal is
checked without any DNS lookup.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass, replace
from urllib.parse import urlsplit

MAX_URL_CHARS = 2048
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",  # AWS, GCP, Azure IMDS, OpenStack, ...
        "169.254.170.2",  # AWS ECS task metadata
        "100.100.100.200",  # Alibaba Cloud
        "168.63.129.16",  # Azure WireServer (a public address)
        "fd00:ec2::254",  # AWS IMDS over IPv6
    )
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
"""The well-known NAT64 prefix: the last 32 bits are the IPv4 address reached."""
_LOCAL_NAT64 = ipaddress.ip_network("64:ff9b:1::/48")
"""Local-use NAT64 (RFC 8215): translates to whatever a local gateway chooses; refused."""

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class RefusedUrl(ValueError):
    """A URL the guard will not contact; the message says why."""


@dataclass(frozen=True)
class Policy:
    allow_private: bool = False
    """Also allow private, loopback, link-local and other non-global unicast addresses."""
    allow_loopback: bool = False
    """Allow loopback only (the default of a loopback-bound server)."""


@dataclass(frozen=True)
class Target:
    """A checked URL: connect to one of ``addresses`` and send ``Host: host[:port]``."""

    scheme: str
    host: str
    port: int
    path: str
    addresses: tuple[str, ...]


def resolve(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (tests replace this to stay off the network); an
    address literal is itself, without a lookup."""
    try:
        return [str(ipaddress.ip_address(host))]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise RefusedUrl(f"cannot resolve {host!r}: {exc}") from None
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for, in the forms that carry one: IPv4-mapped
    (``::ffff:a.b.c.d``), IPv4-translated (``::ffff:0:a.b.c.d``), IPv4-compatible
    (``::a.b.c.d``), NAT64 (``64:ff9b::a.b.c.d``), 6to4 (``2002:AABB:CCDD::``) and Teredo
    (its client); None for any other address."""
    value = int(address)
    low = ipaddress.IPv4Address(value & 0xFFFFFFFF)
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if value >> 32 == 0xFFFF0000 or address in _NAT64:
        return low
    if value >> 32 == 0 and value > 1:  # :: and ::1 are themselves
        return low
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    return None


def refusal(address: IPAddress, policy: Policy) -> str | None:
    """Why ``address`` may not be contacted under ``policy``, or None if it may. An IPv6
    address that carries an IPv4 address is judged by that IPv4 address too."""
    if isinstance(address, ipaddress.IPv6Address):
        if address in _LOCAL_NAT64:
            return "is a local-use NAT64 address"
        inner = embedded_ipv4(address)
        if inner is not None:
            mapped = address.ipv4_mapped is not None  # the only form that reaches our loopback
            why = refusal(inner, policy if mapped else replace(policy, allow_loopback=False))
            if why is not None or mapped:
                return None if why is None else f"carries {inner}, which {why}"
    if address in METADATA_ADDRESSES:
        return "is a cloud metadata address"
    if address.is_multicast:
        return "is a multicast address"
    if address.is_unspecified:
        return "is the unspecified address"
    if address.is_global or policy.allow_private:
        return None
    if address.is_loopback:
        return None if policy.allow_loopback else "is a loopback address"
    return "is a private, link-local or reserved address"


def split(url: str) -> tuple[str, str, int, str]:
    """``(scheme, host, port, path?query)`` of an http(s) URL, or :class:`RefusedUrl`."""
    if not isinstance(url, str) or not url:
        raise RefusedUrl("the URL must be a non-empty string")
    if len(url) > MAX_URL_CHARS:
        raise RefusedUrl(f"the URL is longer than {MAX_URL_CHARS} characters")
    if any(ord(c) <= 32 or ord(c) == 127 for c in url):
        raise RefusedUrl("the URL contains spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise RefusedUrl(f"the URL is malformed: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise RefusedUrl("only http:// and https:// URLs are allowed")
    if parts.username is not None or parts.password is not None:
        raise RefusedUrl("user info (user:password@) is not allowed in the URL")
    host = parts.hostname
    if not host:
        raise RefusedUrl("the URL has no host")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return scheme, host, port or (443 if scheme == "https" else 80), path


def check(url: str, policy: Policy) -> Target:
    """Parse ``url`` and resolve its host once; refuse it if any address is not allowed."""
    scheme, host, port, path = split(url)
    addresses = resolve(host, port)
    if not addresses:
        raise RefusedUrl(f"{host!r} resolves to no address")
    for text in addresses:
        try:
            address = ipaddress.ip_address(text.split("%", 1)[0])
        except ValueError:
            raise RefusedUrl(f"{host!r} resolves to {text!r}, not an IP address") from None
        why = refusal(address, policy)
        if why is not None:
            # Only where the flag would change the answer: never for metadata or multicast.
            allowed_by_flag = refusal(address, Policy(allow_private=True)) is None
            hint = " (a server started with --webhook-allow-private allows it)"
            raise RefusedUrl(
                f"{host!r} resolves to {address}, which {why}{hint if allowed_by_flag else ''}"
            )
    return Target(scheme, host, port, path, tuple(addresses))
