"""The bodies of every response (and of the providers' webhook requests), as pydantic models:
the OpenAPI document (``bot.openapi``) is generated from them, and the tests validate each
real response against its model (``extra="forbid"``), so the document cannot drift from what
the service answers."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from bot.outbound.carriers.base import Receipt
from bot.outbound.record import OutState
from bot.records import AuditEntry, Outbound
from bot.transport.inbound import InboundSms


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Error(_Body):
    """Every refusal (4xx) and a store outage (503)."""

    error: str = Field(description="why, naming the field or header at fault")
    status: int
    holder: str | None = Field(
        default=None, description="409 on a console case: the agent who holds it"
    )


class RowError(_Body):
    index: int = Field(description="the row's position in `accounts`")
    id: Any = Field(default=None, description="the row's `id` as sent (any JSON value)")
    error: str


class RowWarning(_Body):
    index: int
    id: str
    warning: str = Field(description="taken, but worth a look (a phone on two accounts)")


class AccountsResult(_Body):
    created: int
    updated: int
    started: int = Field(description="conversations started by this batch")
    errors: list[RowError] = Field(description="rows refused, by index; the others are taken")
    warnings: list[RowWarning]


class Accepted(_Body):
    status: Literal["accepted", "duplicate"] = Field(
        description="queued; `duplicate`: the same payment reference was reported before"
    )


class MessageView(_Body):
    """One outbound message and where it is on the send path."""

    id: str
    template: str | None
    text: str
    state: OutState
    carrier: str | None
    provider_id: str | None
    attempts: int
    code: str | None
    detail: str | None
    created_at: str
    not_before: str | None
    sent_at: str | None
    final_at: str | None


class ConversationView(_Body):
    account_id: str
    phone: str
    flow: str
    flow_version: int | str | None
    state: str | None = Field(description="null before the conversation started")
    flags: list[str]
    counters: dict[str, int]
    promise: dict[str, Any] | None = Field(description="date, amount and status of a promise")
    plan: list[dict[str, Any]] = Field(
        description="an instalment plan's instalments not yet kept (due, amount), in date order"
    )
    paid_total: str
    outstanding: str
    timers: dict[str, str] = Field(description="timer name -> when it fires (ISO-8601)")
    opted_out: bool
    compliance: dict[str, Any] = Field(
        description="the gate's view now: window, caps, next_allowed_send (when a proactive"
        " message could go; null while none may: an opt-out, a wrong number, a hold),"
        " deferred messages"
    )
    transcript: list[AuditEntry]
    messages: list[MessageView]


class Health(_Body):
    status: Literal["alive"]


class Readiness(_Body):
    ready: bool
    checks: dict[str, str] = Field(
        description="store, flows, nlu, carrier:<name>: `ok` or what is wrong"
    )
    pid: int = Field(
        description="the answering process: with `smsbot serve --workers N`, which worker"
    )


# --- webhooks: what providers send and what each is answered ---------------------------------


class _Provider(BaseModel):
    model_config = ConfigDict(extra="allow")  # providers add fields; unknown ones are ignored


class TwilioInbound(_Provider):
    """Form-encoded; every field is signed (X-Twilio-Signature)."""

    MessageSid: str
    From: str = Field(description="E.164")
    To: str
    Body: str
    NumMedia: str | None = None


class TwilioStatus(_Provider):
    MessageSid: str
    MessageStatus: str = Field(description="sent, delivered, undelivered, failed …")
    ErrorCode: str | None = None


class GenericInbound(_Provider):
    """Signed: X-Smsbot-Signature = hex HMAC-SHA256(secret, f"{X-Smsbot-Timestamp}." + body)."""

    id: str
    from_: str = Field(alias="from", description="the borrower's number")
    to: str | None = None
    text: str
    sent_at: str | None = Field(default=None, description="ISO-8601 with an offset")


class GenericAck(_Body):
    ok: Literal[True]
    id: str


class AliyunInbound(_Provider):
    """One item of an Alibaba Cloud SmsUp push (the body is an array of these)."""

    phone_number: str
    content: str
    send_time: str | None = Field(default=None, description="yyyy-MM-dd HH:mm:ss, Beijing")
    dest_code: str | None = None
    sequence_id: int | str | None = None
    sign_name: str | None = None


class AliyunAck(_Body):
    code: int = Field(description="0: received")
    msg: str


class TencentInbound(_Provider):
    """A Tencent Cloud reply callback (one object, or an array of them)."""

    mobile: str
    nationcode: str | None = None
    text: str
    sign: str | None = None
    time: int | None = Field(default=None, description="unix seconds")
    extend: str | None = None


class TencentAck(_Body):
    result: int = Field(description="0: received")
    errmsg: str


# Lists answered by the API, each item documented by the record it is.
LISTS: dict[str, type[BaseModel]] = {
    "/api/sandbox/messages": Outbound,
    "/api/unmatched": InboundSms,
    "/api/receipts/unmatched": Receipt,
}


class ReloadReport(BaseModel):
    """``POST /api/admin/reload`` (bot.reload)."""

    ok: bool  # everything read was taken
    flows: dict[str, str]  # every running flow and its version, after the reload
    rules: Literal["reloaded", "kept"]  # the rule packs: the new file, or the running one kept
    problems: list[str]  # what was refused, as file:line: field: message
