"""Where webhooks may send: public addresses, and the hosts the operator lists.

A receiver's name is resolved once; every address it resolves to is checked, and the
request then goes to that checked address (the URL's host rewritten to it, the name kept in
the ``Host`` header and as the TLS server name), so a name that resolves to a public address
when checked and to ``127.0.0.1`` a moment later (DNS rebinding) never reaches loopback.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import httpx

from executor.errors import AddressRefused, WebhookRejected

__all__ = ["AllowList", "PinnedTarget", "address_class", "pin", "resolve_addresses"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], list[str]]
MAX_URL_CHARS = 2000
DEFAULT_PORTS = {"http": 80, "https": 443}


def address_class(address: IPAddress) -> str | None:
    """Why ``address`` is not public (``loopback``, ``link-local``, ...), or None if it is."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
    checks = (
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("unspecified", address.is_unspecified),
        ("multicast", address.is_multicast),
        ("private", address.is_private),
        ("reserved", not address.is_global),
    )
    return next((name for name, hit in checks if hit), None)


def resolve_addresses(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to for a TCP connection (the system resolver)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


@dataclass(frozen=True)
class AllowList:
    """Hosts (``name`` or ``name:port``, matched on the URL's host, case-insensitively)
    that may resolve to non-public addresses."""

    entries: frozenset[tuple[str, int | None]]

    @classmethod
    def parse(cls, entries: Iterable[str]) -> AllowList:
        parsed: set[tuple[str, int | None]] = set()
        for entry in entries:
            url = httpx.URL(f"http://{entry.strip()}")
            parsed.add((url.host.lower(), url.port))
        return cls(frozenset(parsed))

    def allows(self, host: str, port: int) -> bool:
        host = host.lower()
        return (host, None) in self.entries or (host, port) in self.entries


@dataclass(frozen=True)
class PinnedTarget:
    """A receiver URL checked and pinned to one of its addresses."""

    url: httpx.URL  # what the tenant configured
    address: str  # the checked address the request goes to

    @property
    def request_url(self) -> httpx.URL:
        return self.url.copy_with(host=self.address)

    @property
    def headers(self) -> dict[str, str]:
        """The ``Host`` the receiver expects (the name, not the address)."""
        return {"Host": self.url.netloc.decode("ascii")}

    @property
    def extensions(self) -> dict[str, Any]:
        """TLS: the name is the server name sent and the one the certificate must match."""
        return {"sni_hostname": self.url.host} if self.url.scheme == "https" else {}


def parse_url(raw: str, field: str = "webhook_url") -> httpx.URL:
    """``raw`` as an http(s) URL with a host, no user info and no fragment."""
    if len(raw) > MAX_URL_CHARS:
        raise WebhookRejected(f"{field} is longer than {MAX_URL_CHARS} characters", field=field)
    try:
        url = httpx.URL(raw)
        host = url.host  # decoded here: an IDNA error (a ValueError) is raised now
    except (httpx.InvalidURL, ValueError) as exc:
        raise WebhookRejected(f"{field} {raw[:200]!r} is not a URL: {exc}", field=field) from exc
    if url.scheme not in DEFAULT_PORTS or not host:
        raise WebhookRejected(
            f"{field} {raw[:200]!r} must be an http:// or https:// URL with a host", field=field
        )
    if url.userinfo or url.fragment:
        raise WebhookRejected(
            f"{field} must not carry user info or a fragment: put a credential in the header",
            field=field,
        )
    return url


def pin(
    raw_url: str,
    allowed: AllowList,
    resolver: Resolver = resolve_addresses,
    field: str = "webhook_url",
) -> PinnedTarget:
    """Resolve the URL's host once and check every address; AddressRefused naming the first
    one not allowed (or a host that does not resolve)."""
    url = parse_url(raw_url, field)
    port = url.port or DEFAULT_PORTS[url.scheme]
    try:
        addresses = resolver(url.host, port)
    except (OSError, ValueError) as exc:  # a name the resolver cannot encode: ValueError
        raise AddressRefused(
            f"{field}: host {url.host!r} does not resolve ({exc}): use a name this executor "
            "can resolve",
            field=field,
        ) from exc
    if not addresses:
        raise AddressRefused(f"{field}: host {url.host!r} has no address", field=field)
    if not allowed.allows(url.host, port):
        for address in addresses:
            kind = address_class(ipaddress.ip_address(address.split("%")[0]))
            if kind is not None:
                raise AddressRefused(
                    f"{field}: host {url.host!r} resolves to {address}, a {kind} address; "
                    "webhooks go to public addresses only unless the operator lists the host "
                    "in EXECUTOR_WEBHOOK_ALLOWED_HOSTS",
                    field=field,
                    address=address,
                )
    return PinnedTarget(url, addresses[0])
