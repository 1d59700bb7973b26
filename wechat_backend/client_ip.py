"""The client's address: ``X-Forwarded-For`` is believed only when the connection itself comes
from a ``[server] trusted_proxies`` network (otherwise anyone could pick the address the per-IP
limit counts)."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from functools import lru_cache

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@lru_cache(maxsize=8)
def networks(cidrs: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(c, strict=False) for c in cidrs)


def _trusted(address: str, trusted: Sequence[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in trusted)


def client_ip(remote: str, forwarded_for: str | None, trusted_cidrs: tuple[str, ...]) -> str:
    """Walk ``X-Forwarded-For`` from the right past trusted proxies; the first other hop is the client."""
    trusted = networks(trusted_cidrs)
    if not trusted or not forwarded_for or not _trusted(remote, trusted):
        return remote
    hops = [h.strip() for h in forwarded_for.split(",") if h.strip()]
    for hop in reversed(hops):
        if not _trusted(hop, trusted):
            try:
                return str(ipaddress.ip_address(hop))
            except ValueError:
                return remote  # garbage in the header: count the proxy, not a made-up address
    return hops[0] if hops else remote


def rate_subject(address: str) -> str:
    """What the per-address limit counts: an IPv4 address, or the /64 of an IPv6 one (one
    subscriber's network; counting single IPv6 addresses would let a client rotate freely)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


def address_in(address: str, cidrs: tuple[str, ...]) -> bool:
    """Whether ``address`` lies in one of ``cidrs`` (an unparseable address lies in none)."""
    return _trusted(address, networks(cidrs))
