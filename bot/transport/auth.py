"""Protection for providers that sign nothing (Aliyun, Tencent): path token and IP allow-list.

Both checks raise WebhookError(403) so that an unauthenticated request changes nothing. Which
address is "remote" (the socket peer, or a trusted proxy's X-Forwarded-For) is the web
layer's decision; this module only compares.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network

from bot.transport.inbound import WebhookError, same_secret

Network = IPv4Network | IPv6Network


def check_path_token(expected: str | None, given: str | None) -> None:
    """Accept when no token is configured (None) or ``given`` equals it; else 403.

    An empty configured token never matches: an empty environment variable must close the
    endpoint, not open it to a request that simply omits the token.
    """
    if expected is None:
        return
    if not given:
        raise WebhookError(403, "missing path token")
    if not expected or not same_secret(expected, given):
        raise WebhookError(403, "wrong path token")


def parse_allowlist(allowed: Iterable[str]) -> tuple[Network, ...]:
    """Single addresses and CIDR networks as networks; ValueError naming a bad entry.

    Call it when loading settings so a typo fails at start-up rather than on every request.
    Host bits are accepted (``10.0.0.5/24`` means ``10.0.0.0/24``), as an operator means it.
    """
    networks: list[Network] = []
    for entry in allowed:
        try:
            networks.append(ip_network(entry.strip(), strict=False))
        except ValueError as exc:
            raise ValueError(
                f"IP allow-list entry {entry!r} is not an address or network: {exc}"
            ) from None
    return tuple(networks)


# Settings are fixed for the process lifetime, so each distinct list is parsed once.
_cached_allowlist = functools.lru_cache(maxsize=32)(parse_allowlist)


def check_ip(allowed: Sequence[str], remote: str | None) -> None:
    """Accept when ``allowed`` is empty or ``remote`` falls in one of its entries; else 403."""
    if not allowed:
        return
    networks = _cached_allowlist(tuple(allowed))
    if not remote:
        raise WebhookError(403, "remote address unknown and an IP allow-list is configured")
    try:
        address = ip_address(remote.strip())
    except ValueError:
        raise WebhookError(403, f"remote address {remote!r} is not an IP address") from None
    candidates: list[IPv4Address | IPv6Address] = [address]
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        # A dual-stack socket reports IPv4 peers as ::ffff:a.b.c.d; match them as IPv4.
        candidates.append(address.ipv4_mapped)
    # Membership across versions is simply False, so mixed lists need no special case.
    if not any(candidate in network for candidate in candidates for network in networks):
        raise WebhookError(403, f"remote address {remote} is not in the IP allow-list")
