"""Plumbing shared by the real carrier adapters (Twilio, Alibaba Cloud, Tencent Cloud).

One HTTP exchange with a provider, and what a failed one proves. The single question that
matters is whether the request may have reached the provider (``base`` module docstring):

* nothing was sent — the connection was never established (refused, DNS failure, TLS
  handshake failure, connect timeout): ``retry`` is safe;
* it may have been — the request was written and then the read timed out, the server closed
  the connection, or the answer was cut short: ``ambiguous``.

aiohttp raises :class:`aiohttp.ClientConnectorError` (and its DNS/TLS subclasses) and
:class:`aiohttp.ConnectionTimeoutError` only while connecting, before a byte of the request is
written; every other failure happens after, so everything else is ambiguous. aiohttp never
retries a POST on its own (only idempotent methods on a reused connection), so one call here is
at most one delivery attempt at the provider.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Final, Literal

import aiohttp
from yarl import URL

from bot.outbound.carriers.base import SendOutcome
from bot.privacy import mask_text

# Provider answers are a few hundred bytes; a list page is at most a few hundred KiB. Anything
# bigger is not an answer we can use, and must not be buffered whole.
MAX_BODY_BYTES: Final = 4 * 1024 * 1024
_QUERY: Final = re.compile(r"\?[^\s'\"]*")
# A Retry-After beyond a day is not advice we can act on; the sender's own backoff decides.
_MAX_RETRY_AFTER_S: Final = 86_400.0


@dataclass(frozen=True)
class Answer:
    """A complete HTTP answer: status, headers (case-insensitive) and the raw body."""

    status: int
    headers: Mapping[str, str]
    body: bytes


@dataclass(frozen=True)
class NoAnswer:
    """No usable answer; ``status`` says what that proves (``retry``: nothing was sent)."""

    status: Literal["retry", "ambiguous", "failed"]
    code: str
    detail: str

    def outcome(self) -> SendOutcome:
        return SendOutcome(
            status=self.status,
            code=self.code,
            detail=self.detail,
            config_error=self.code == "CONFIG",
        )


class _TooLarge(Exception):
    pass


async def exchange(
    session: aiohttp.ClientSession,
    method: str,
    url: URL,
    *,
    headers: Mapping[str, str],
    data: bytes | list[tuple[str, str]] | None,
    timeout_s: float,
) -> Answer | NoAnswer:
    """One request, read to the end; never raises for a network failure (it classifies it).

    ``asyncio.CancelledError`` propagates: a cancelled send is the caller's decision, and the
    caller knows it may have been delivered.
    """
    # One budget for the whole exchange; the connect phase gets the same budget so that a
    # black-holed host still ends as a (safe) connect timeout rather than an ambiguous one.
    timeout = aiohttp.ClientTimeout(total=timeout_s, sock_connect=timeout_s)
    try:
        async with session.request(
            method,
            url,
            headers=dict(headers),
            data=data,
            timeout=timeout,
            allow_redirects=False,  # a redirect would re-send the body elsewhere
        ) as resp:
            body = await _read_bounded(resp)
            return Answer(status=resp.status, headers=resp.headers, body=body)
    except aiohttp.InvalidURL:
        # Not the URL itself: its query can hold the phone number (Aliyun, Twilio's lookup).
        return NoAnswer("failed", "CONFIG", "invalid provider URL (check the endpoint setting)")
    except aiohttp.ConnectionTimeoutError:
        return NoAnswer("retry", "CONNECT_TIMEOUT", "connect timeout: nothing was sent")
    except aiohttp.ClientConnectorError as exc:
        # Refused, unreachable, DNS, TLS handshake: the connection never existed.
        return NoAnswer("retry", "CONNECT_ERROR", f"could not connect: {_oneline(exc)}")
    except _TooLarge:
        return NoAnswer("ambiguous", "BAD_RESPONSE", "answer larger than the size limit")
    except (TimeoutError, aiohttp.ServerTimeoutError):
        return NoAnswer("ambiguous", "READ_TIMEOUT", "no answer in time after the request was sent")
    except aiohttp.ServerDisconnectedError:
        return NoAnswer("ambiguous", "DISCONNECTED", "server closed the connection mid-request")
    except (aiohttp.ClientError, OSError) as exc:
        # Reset, truncated payload, protocol error: all after the connection existed.
        return NoAnswer("ambiguous", "NETWORK", f"{type(exc).__name__}: {_oneline(exc)}")


async def _read_bounded(resp: aiohttp.ClientResponse) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in resp.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise _TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def _oneline(exc: BaseException) -> str:
    """An exception's text for the audit, without any URL query (which can hold the phone
    number and template values) and with phone numbers masked."""
    text = _QUERY.sub("?…", str(exc))
    return short(text) or type(exc).__name__


def json_object(body: bytes) -> dict[str, Any] | None:
    """The body as a JSON object, or None (not UTF-8, not JSON, not an object)."""
    try:
        data = json.loads(body.decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    return data if isinstance(data, dict) else None


def retry_after_s(value: str | None, now: Callable[[], datetime]) -> float | None:
    """RFC 9110 Retry-After (delay-seconds or an HTTP-date) in seconds, or None if unusable."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:  # RFC 9110 dates are GMT; obsolete forms may omit it
            when = when.replace(tzinfo=UTC)
        seconds = (when - now()).total_seconds()
    if math.isnan(seconds):
        return None
    return min(max(seconds, 0.0), _MAX_RETRY_AFTER_S)


def utc_now() -> datetime:
    return datetime.now(UTC)


def aware(moment: datetime) -> datetime:
    """``moment`` with a zone: a naive datetime is taken as UTC (the service's clock is UTC)."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def host_header(url: URL) -> str:
    """The Host header aiohttp sends for ``url`` (host, plus the port when not the default),
    which signatures over ``host`` must use verbatim."""
    host = url.raw_host or ""
    if ":" in host:  # an IPv6 literal
        host = f"[{host}]"
    if url.explicit_port is not None and not url.is_default_port():
        host = f"{host}:{url.explicit_port}"
    return host


def short(text: str, limit: int = 300) -> str:
    """A provider message, bounded and with phone and ID numbers masked: providers echo the
    number in their messages ("The 'To' number +86… is not valid"), and details reach logs."""
    return mask_text(" ".join(text.split()))[:limit]
