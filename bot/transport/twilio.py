"""Twilio Programmable Messaging: request signature and the inbound-message form.

Pure functions over what the web layer already has (public URL, decoded form pairs, headers);
no I/O. Reference: ``shared/reference/providers.md`` §2.1.

Signature: ``base64(HMAC(key, url + name1 + value1 + name2 + value2 …))`` over the form
parameters sorted by name (Python's code-point order is the "Unix-style case-sensitive" order
Twilio asks for). Key and hash are the Auth Token with SHA-1, unless a Webhooks Rule matched:
then Twilio sends ``X-Twilio-Webhooks-Signature-Settings: key=…,algorithm=HMAC_SHA256`` and
signs with that Rule's SharedKey; only the hash function changes. Both are supported.

Not supported: JSON-bodied webhooks signed with a ``bodySHA256`` query parameter (inbound SMS
is always form-encoded), and WhatsApp/other channels (``From: whatsapp:+…`` is rejected).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
from collections.abc import Sequence
from datetime import datetime
from typing import Final, Literal
from urllib.parse import urlsplit, urlunsplit

from bot.transport.inbound import (
    InboundSms,
    WebhookError,
    build_inbound,
    parse_phone,
    same_secret,
)

SIGNATURE_HEADER: Final = "X-Twilio-Signature"
SIGNATURE_SETTINGS_HEADER: Final = "X-Twilio-Webhooks-Signature-Settings"

# The acknowledgement: an empty TwiML response means "received, no reply in-band"; replies go
# out later through the REST API, after the message has been processed.
TWIML_EMPTY: Final = '<?xml version="1.0" encoding="UTF-8"?><Response/>'
TWIML_CONTENT_TYPE: Final = "text/xml"

Algorithm = Literal["HMAC_SHA1", "HMAC_SHA256"]
_HASHES: Final = {"HMAC_SHA1": hashlib.sha1, "HMAC_SHA256": hashlib.sha256}
_DEFAULT_PORTS: Final = {"https": 443, "http": 80}

# Message SIDs are 34 characters (SM/MM + 32 hex); allow some slack, but bound what becomes a
# dedup key.
_MAX_SID: Final = 64


def expected_signature(
    auth_token: str,
    url: str,
    params: Sequence[tuple[str, str]],
    *,
    algorithm: Algorithm = "HMAC_SHA1",
) -> str:
    """The ``X-Twilio-Signature`` Twilio sends for ``url`` and these form ``params``.

    ``params`` are the decoded form pairs in received order; all of them must be passed,
    untrimmed. A name given several times (MediaUrl0…, or a proxy's repeated field) is signed
    as Twilio's own library computes it (``RequestValidator.compute_signature``): names sorted,
    each name's *distinct* values sorted, whatever order they arrived in.
    """
    return _signature(auth_token, url, _signed_params(params), algorithm)


def _signed_params(params: Sequence[tuple[str, str]]) -> str:
    """The form as Twilio signs it: names sorted, each name's distinct values sorted. This runs
    for every webhook: a form whose names are all distinct (Twilio's own) is sorted by name
    alone through a dict, the cheapest way measured; repeated names sort the distinct pairs."""
    form = dict(params)
    if len(form) == len(params):
        return "".join(name + form[name] for name in sorted(form))
    return "".join(name + value for name, value in sorted(set(params)))


def _signature(key: str, url: str, signed_params: str, algorithm: Algorithm) -> str:
    # hmac.digest: OpenSSL's one-shot HMAC, without building an hmac object per request.
    mac = hmac.digest(key.encode(), (url + signed_params).encode(), _HASHES[algorithm])
    return base64.b64encode(mac).decode("ascii")


def verify(
    auth_token: str,
    url: str,
    params: Sequence[tuple[str, str]],
    header: str | None,
    *,
    settings_header: str | None = None,
    shared_key: str | None = None,
) -> None:
    """Accept the request or raise WebhookError(403) saying why.

    ``url`` is the public URL Twilio called (scheme, host, path and query), rebuilt from
    configuration rather than from the request, which a proxy may have rewritten.
    ``settings_header`` is ``X-Twilio-Webhooks-Signature-Settings`` when present; the request
    is then checked with ``shared_key`` and the algorithm it names instead of the Auth Token.
    """
    if not header:
        raise WebhookError(403, f"missing {SIGNATURE_HEADER} header")
    if settings_header:
        algorithm = _algorithm(settings_header)
        if not shared_key:
            raise WebhookError(
                403,
                f"request is signed with a Twilio Webhooks shared key ({SIGNATURE_SETTINGS_HEADER}"
                " present) but no shared key is configured",
            )
        key = shared_key
    else:
        algorithm = "HMAC_SHA1"
        key = auth_token
    if not key:
        # An empty key is one anyone can sign with: an unconfigured token must fail closed.
        raise WebhookError(403, "Twilio auth token is not configured")
    # Twilio's SDKs disagree on whether an https URL carries :443 (twilio-python #392/#402,
    # twilio-node #411); accept either spelling of the default port, as twilio-python's
    # validator does. Each try needs the secret, so this widens nothing a forger can use.
    matched = False
    signed = _signed_params(params)  # once for every URL spelling
    for candidate in _url_variants(url):
        matched |= same_secret(_signature(key, candidate, signed, algorithm), header)
    if not matched:
        raise WebhookError(403, f"invalid {SIGNATURE_HEADER}")


def _algorithm(settings_header: str) -> Algorithm:
    settings = dict(
        part.strip().partition("=")[::2] for part in settings_header.split(",") if part.strip()
    )
    name = settings.get("algorithm", "HMAC_SHA1").strip().upper()
    if name == "HMAC_SHA1":
        return "HMAC_SHA1"
    if name == "HMAC_SHA256":
        return "HMAC_SHA256"
    raise WebhookError(403, f"unsupported Twilio signature algorithm {name!r}")


@functools.lru_cache(maxsize=64)  # the public URL and its few paths: parsed once each
def _url_variants(url: str) -> tuple[str, ...]:
    """``url`` itself, then the same URL with its default port added or removed."""
    variants = [url]
    parts = urlsplit(url)
    default = _DEFAULT_PORTS.get(parts.scheme.lower())
    try:
        port = parts.port
    except ValueError:  # a malformed port: only the URL as given can match
        return (url,)
    if default is None or not parts.netloc:
        return (url,)
    if port is None:
        variants.append(urlunsplit(parts._replace(netloc=f"{parts.netloc}:{default}")))
    elif port == default:
        netloc = parts.netloc.removesuffix(f":{default}")
        variants.append(urlunsplit(parts._replace(netloc=netloc)))
    return tuple(variants)


def parse(params: Sequence[tuple[str, str]], received_at: datetime) -> InboundSms:
    """The inbound message in an (already verified) Twilio form, or WebhookError(400).

    Twilio gives no message time, so ``sent_at`` is None; ``received_at`` is our clock.
    """
    form: dict[str, str] = {}
    for name, value in params:
        form.setdefault(name, value)  # a repeated name: the first value, as MultiDict.get does

    # SmsMessageSid and SmsSid are deprecated aliases Twilio still sends next to MessageSid.
    sid = form.get("MessageSid") or form.get("SmsMessageSid") or form.get("SmsSid")
    if not sid:
        raise WebhookError(400, "MessageSid is missing (nor SmsMessageSid or SmsSid given)")
    if len(sid) > _MAX_SID or not sid.isascii() or not sid.isalnum():
        raise WebhookError(400, f"MessageSid {sid[:80]!r} is not a Twilio SID")

    sender = form.get("From")
    if not sender:
        raise WebhookError(400, "From is missing")
    if ":" in sender:
        # whatsapp:+…, messenger:…: another channel whose replies an SMS cannot reach.
        raise WebhookError(400, f"From: {sender!r} is not an SMS sender (only SMS is supported)")
    if not sender.strip().startswith("+"):
        # Twilio sends E.164 for phones; without '+' the country would be a guess.
        raise WebhookError(400, f"From: {sender!r} is not an E.164 phone number")
    phone = parse_phone(sender, "From")

    to = form.get("To", "").strip()
    if not to:
        raise WebhookError(400, "To is missing")

    num_media = form.get("NumMedia")
    media = 0
    if num_media is not None:
        if not (num_media.isascii() and num_media.isdigit()):
            raise WebhookError(400, f"NumMedia: {num_media!r} is not a count")
        media = int(num_media)
    body = form.get("Body")
    if body is None:
        if media == 0:
            # A status callback (MessageStatus, no Body) posted to this URL is not a reply.
            raise WebhookError(400, "Body is missing (is this a status callback?)")
        body = ""  # a picture without a caption is still the borrower answering

    return build_inbound(
        where="",
        provider="twilio",
        msg_id=sid,
        phone=phone,
        to=to,
        text=body,
        sent_at=None,
        received_at=received_at,
        names={"text": "Body"},
    )
