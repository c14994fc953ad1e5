"""The carrier seam: what the senders ask of an SMS provider, and what it answers.

A carrier adapter turns one stored outbound record into one HTTP request to the provider's
API and classifies the answer. Adapters hold no state of their own beyond their settings and
the shared ``aiohttp.ClientSession`` (one per service, so connections are pooled); every
decision about retries, states, ledgers and audit is the sender's (``bot.outbound.sender``).

The one distinction that matters for exactly-once: did the provider possibly accept the
message? ``retry`` promises it did not (connection refused, 429, a documented throttling
code): resending is safe. ``ambiguous`` says it may have (a timeout after the request was
written, a dropped connection, a 5xx): the sender must not resend before :meth:`Carrier.lookup`
has asked the provider, by our message id, whether it has the message.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from datetime import datetime
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from bot.records import Outbound

CarrierName = Literal["sandbox", "twilio", "aliyun", "tencent"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class CarrierMessage(_Frozen):
    """One SMS as the carrier is asked to send it."""

    id: str  # ours: Aliyun OutId, Tencent SessionContext, the ref in Twilio's StatusCallback
    phone: str  # E.164, e.g. +8613800138000
    text: str  # the rendered text (what a free-text API sends; the audit keeps it)
    template: str  # our template name
    # Each provider's approved template code (``codes: {aliyun: SMS_123, tencent: "4567"}``)
    # and the template's values in the order they appear in the template's text (Tencent's
    # TemplateParamSet is positional, in that order).
    codes: dict[str, str] = Field(default_factory=dict)
    params: dict[str, str] = Field(default_factory=dict)


SendStatus = Literal["sent", "retry", "ambiguous", "failed"]


class SendOutcome(_Frozen):
    """What one send attempt came to."""

    status: SendStatus
    provider_id: str | None = None  # Twilio MessageSid, Aliyun BizId, Tencent SerialNo
    code: str | None = None  # the provider's own code (HTTP status when it gave none)
    detail: str | None = None  # the provider's message, for the audit and the agent
    retry_after_s: float | None = None  # when the provider said how long to wait (429)
    # Permanent failures that say something about the number, not the message:
    opted_out: bool = False  # the recipient unsubscribed (Twilio 21610 and equivalents)
    invalid_number: bool = False  # not a reachable mobile number: stop trying it
    # Failed because of *our* set-up (credentials, endpoint, sender id, balance), not the
    # message: the sender keeps the message and holds the carrier until it is fixed.
    config_error: bool = False


LookupStatus = Literal["found", "absent", "unsupported"]


class LookupResult(_Frozen):
    """Whether the provider has a message we may have sent (reconciliation after a crash or
    an ambiguous outcome). ``absent`` must only be answered when the provider's record is
    authoritative for the window asked about; anything uncertain is ``unsupported``."""

    status: LookupStatus
    provider_id: str | None = None
    state: ReceiptState | None = None  # how far it got, when the provider says
    code: str | None = None
    detail: str | None = None


ReceiptState = Literal["sent", "delivered", "undelivered", "failed"]


class Receipt(_Frozen):
    """One delivery report, correlated by our id where the provider echoes it, else by its id."""

    carrier: CarrierName
    message_id: str | None = None  # ours (Aliyun out_id, Tencent ext, Twilio's callback ref)
    provider_id: str | None = None
    state: ReceiptState
    code: str | None = None
    detail: str | None = None
    at: AwareDatetime | None = None  # the provider's time of the report, when it gives one
    phone: str | None = None  # E.164 when the provider gives it

    @field_validator("message_id", "provider_id", "code", "detail", "phone")
    @classmethod
    def _text(cls, v: str | None) -> str | None:
        # JSON may carry lone surrogates (\ud800): no store key or log line can hold them.
        if v is not None:
            try:
                v.encode("utf-8")
            except UnicodeEncodeError as exc:
                raise ValueError("not valid Unicode text") from exc
        return v


class Carrier(ABC):
    """One provider's send API."""

    name: CarrierName

    @abstractmethod
    async def send(self, message: CarrierMessage) -> SendOutcome:
        """One attempt; never raises for a provider or network failure (it classifies it)."""

    @abstractmethod
    async def lookup(self, message: CarrierMessage, sent_after: datetime) -> LookupResult:
        """Asks the provider whether it accepted ``message`` (sent at or after
        ``sent_after``); never raises for a provider or network failure (``unsupported``)."""

    def check(self, message: CarrierMessage) -> str | None:
        """Why this carrier cannot send ``message`` at all (e.g. no template code), or None."""
        return None

    def stored_send(self, message: Outbound) -> SendOutcome | None:
        """The outcome of a send that is nothing but a write to our own store (the sandbox's),
        known without a call; None for every real carrier (a call must be made)."""
        return None

    async def send_outbound(self, message: Outbound) -> SendOutcome:
        """What the sender calls: :meth:`send` with the message in the carrier's terms (the
        sandbox keeps the whole stored message instead)."""
        return await self.send(carrier_message(message))

    async def aclose(self) -> None:
        """Releases what the adapter holds (the shared HTTP session is the service's)."""
        return None


def carrier_message(message: Outbound) -> CarrierMessage:
    return CarrierMessage(
        id=message.id,
        phone=message.phone,
        text=message.text,
        template=message.template,
        codes=message.codes,
        params=message.params,
    )


LookupResult.model_rebuild()
