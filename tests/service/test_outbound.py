"""The send state machine on both stores: reserve, claim, call, settle, reconcile, receipts.

Each test drives the gate step's output (a reserved record) through ``Sender`` with a
scripted carrier, and checks the record, the ledger, the audit and the conversation's queue
agree with what the carrier was asked — including when a sender dies between steps.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from bot.clock import Clock
from bot.outbound import receipts
from bot.outbound.carriers.base import (
    Carrier,
    CarrierMessage,
    LookupResult,
    Receipt,
    SendOutcome,
)
from bot.outbound.record import OutboundRecord, queued
from bot.outbound.sender import Sender, SendPolicy
from bot.records import AccountRecord, Outbound, QueuedEvent
from bot.storage.base import Store, Transition
from bot.storage.redis import RedisStore
from tests.service.conftest import RedisServer

T0 = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)
PHONE = "+8613800138000"


class Scripted(Carrier):
    """A carrier that answers from a script and remembers what it accepted (like a provider)."""

    name = "twilio"

    def __init__(self, outcomes: list[SendOutcome] | None = None) -> None:
        self.outcomes = list(outcomes or [])
        self.calls: list[str] = []
        self.accepted: dict[str, str] = {}  # our id -> provider id
        self.lookups: list[str] = []
        self.lookup_answer: str | None = None  # None: answer from what was accepted

    async def send(self, message: CarrierMessage) -> SendOutcome:
        self.calls.append(message.id)
        outcome = self.outcomes.pop(0) if self.outcomes else SendOutcome(status="sent")
        if outcome.status == "sent" or outcome.code == "accepted-then-timeout":
            pid = f"SM{len(self.accepted):04d}"
            self.accepted[message.id] = pid
            if outcome.status == "sent":
                outcome = outcome.model_copy(update={"provider_id": pid})
        return outcome

    async def lookup(self, message: CarrierMessage, sent_after: datetime) -> LookupResult:
        self.lookups.append(message.id)
        if self.lookup_answer == "unsupported":
            return LookupResult(status="unsupported")
        if message.id in self.accepted:
            return LookupResult(status="found", provider_id=self.accepted[message.id])
        return LookupResult(status="absent")


def account() -> AccountRecord:
    return AccountRecord(
        id="L0001",
        name="张三",
        phone=PHONE,
        amount_due=Decimal("3200.00"),
        days_overdue=5,
        due_date=date(2026, 11, 20),
    )


async def reserve(store: Store, text: str = "【XX金融】提醒") -> OutboundRecord:
    """What the gate step leaves: the message committed, then reserved and charged."""
    msg = Outbound(account_id="L0001", phone=PHONE, text=text, template="t", created_at=T0)
    await store.upsert_account(account())
    await store.enqueue("L0001", QueuedEvent(kind="tick", at=T0))
    head = await store.head("L0001")
    assert head is not None
    assert await store.commit("L0001", head.id, "{}", [], [msg], None)
    record = queued(msg).moved("reserved", T0, carrier="twilio", reserved_at=T0)
    t = Transition(record, None, charge=record.ledger_entry(), due=T0 + timedelta(seconds=5))
    assert await store.move(t)
    return record


async def regate(store: Store, s: Sender) -> int:
    """The gate step as a drain runs it, reduced to what these tests need (the real one, with
    the compliance gate, runs in the app journeys): every due deferred message is reserved
    and charged again, keeping its record (attempts), and handed to the sender."""
    now = s.clock.now()
    n = 0
    for msg in await store.deferred("L0001"):
        if msg.not_before is None or msg.not_before > now:
            continue
        stored = await store.outbound("L0001", msg.id)
        assert stored is not None and stored.state == "deferred"
        record = stored.moved("reserved", now, reserved_at=now, next_at=None, lease=None)
        t = Transition(record, None, charge=record.ledger_entry(), due=now)
        assert await store.move(t)
        s.submit(record)
        n += 1
    await s.idle()
    return n


def sender(store: Store, carrier: Carrier, clock: Clock, **policy: object) -> Sender:
    kicked: list[str] = []
    s = Sender(
        store,
        {"twilio": carrier},
        clock,
        SendPolicy(**policy),  # type: ignore[arg-type]
        on_event=kicked.append,
    )
    s.kicked = kicked  # type: ignore[attr-defined]
    return s


class Frozen(Clock):
    """Time stands still unless a test moves it (what was stored can be compared exactly)."""

    def __init__(self, t: datetime) -> None:
        super().__init__()
        self.t = t

    def now(self) -> datetime:
        return self.t

    def advance(self, delta: timedelta) -> datetime:
        self.t += delta
        return self.t


def at(seconds: float) -> Frozen:
    return Frozen(T0 + timedelta(seconds=seconds))


async def history(store: Store) -> list[str]:
    return [r.message_id for r in await store.send_history(PHONE, T0 - timedelta(days=1))]


async def kinds(store: Store, message_id: str) -> list[str]:
    audit = await store.read_audit("L0001")
    return [e.kind for e in audit if e.detail.get("message_id") == message_id]


async def test_a_reserved_send_is_claimed_sent_and_indexed_once(store: Store) -> None:
    record = await reserve(store)
    carrier, clock = Scripted(), at(0)
    s = sender(store, carrier, clock)
    s.submit(record)
    await s.idle()
    got = await store.outbound("L0001", record.id)
    assert got is not None and got.state == "sent" and got.provider_id == "SM0000"
    assert (got.attempts, got.lease, got.sent_at) == (1, None, clock.now())
    assert carrier.calls == [record.id]
    assert await history(store) == [record.id]  # charged once, at the reservation
    assert await kinds(store, record.id) == ["sending", "sent"]
    assert await store.locate("twilio", "SM0000") == ("L0001", record.id)
    assert await store.due_sends(T0 + timedelta(days=1)) == []
    # A poll (this process or another) finds nothing left to do.
    assert await s.poll() == 0


async def test_two_senders_racing_for_one_record_call_the_carrier_once(store: Store) -> None:
    record = await reserve(store)
    carrier, clock = Scripted(), at(10)  # past the hand-off grace: every poller sees it
    senders = [sender(store, carrier, clock) for _ in range(4)]
    await asyncio.gather(*(s.poll() for s in senders))
    await asyncio.gather(*(s.idle() for s in senders))
    assert carrier.calls == [record.id]
    got = await store.outbound("L0001", record.id)
    assert got is not None and got.state == "sent"


async def test_a_throttled_send_is_retried_later_and_sent_once(store: Store) -> None:
    record = await reserve(store)
    carrier = Scripted([SendOutcome(status="retry", code="429", retry_after_s=30)])
    clock = at(0)
    s = sender(store, carrier, clock)
    s.submit(record)
    await s.idle()
    got = await store.outbound("L0001", record.id)
    # Back to the gate step, due when the carrier said; nothing left, nothing charged.
    assert got is not None and got.state == "deferred" and got.code == "429"
    assert got.message.not_before == clock.now() + timedelta(seconds=30)
    assert [m.id for m in await store.deferred("L0001")] == [record.id]
    assert await store.due_accounts(clock.now() + timedelta(seconds=30)) == ["L0001"]
    assert await history(store) == []
    assert await s.poll() == 0  # the senders have nothing: it is the gate's again
    assert await regate(store, s) == 0  # not due yet
    clock.advance(timedelta(seconds=31))
    assert await regate(store, s) == 1
    got = await store.outbound("L0001", record.id)
    assert got is not None and (got.state, got.attempts) == ("sent", 2)
    assert carrier.calls == [record.id, record.id]
    assert await history(store) == [record.id]  # charged once for the send that left
    assert await kinds(store, record.id) == ["sending", "retry", "sending", "sent"]


async def test_retries_are_bounded_and_then_the_charge_is_released(store: Store) -> None:
    record = await reserve(store)
    carrier = Scripted([SendOutcome(status="retry", code="503") for _ in range(3)])
    clock = at(0)
    s = sender(store, carrier, clock, max_attempts=3, backoff_base_s=1.0)
    s.submit(record)
    await s.idle()
    for _ in range(2):
        clock.advance(timedelta(minutes=10))
        assert await regate(store, s) == 1
    got = await store.outbound("L0001", record.id)
    assert got is not None and (got.state, got.attempts) == ("failed", 3)
    assert got.detail is not None and "gave up after 3 attempts" in got.detail
    assert len(carrier.calls) == 3
    assert await history(store) == []  # never left: the caps do not count it
    head = await store.head("L0001")
    assert head is not None and head.kind == "delivery_failed"
    assert s.kicked == ["L0001"]  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("outcome", "opted_out", "invalid"),
    [
        (SendOutcome(status="failed", code="21610", opted_out=True), True, False),
        (SendOutcome(status="failed", code="21211", invalid_number=True), False, True),
        (SendOutcome(status="failed", code="30007"), False, False),
    ],
)
async def test_a_permanent_failure_fails_the_message_and_says_what_it_means(
    store: Store, outcome: SendOutcome, opted_out: bool, invalid: bool
) -> None:
    record = await reserve(store)
    s = sender(store, Scripted([outcome]), at(0))
    s.submit(record)
    await s.idle()
    got = await store.outbound("L0001", record.id)
    assert got is not None and (got.state, got.code) == ("failed", outcome.code)
    assert await history(store) == []
    assert await store.is_opted_out(PHONE) is opted_out
    facts = await store.gate_facts("L0001", PHONE, T0)
    assert facts.invalid_number is invalid
    head = await store.head("L0001")
    assert head is not None and head.kind == "delivery_failed"
    assert head.reason is not None and outcome.code is not None
    assert head.reason.startswith(outcome.code)


async def test_an_ambiguous_attempt_the_carrier_has_is_not_sent_again(store: Store) -> None:
    record = await reserve(store)
    carrier = Scripted([SendOutcome(status="ambiguous", code="accepted-then-timeout")])
    clock = at(0)
    s = sender(store, carrier, clock, reconcile_after_s=30)
    s.submit(record)
    await s.idle()
    got = await store.outbound("L0001", record.id)
    assert got is not None and (got.state, got.ambiguous) == ("sending", True)
    clock.advance(timedelta(seconds=31))
    await s.poll()
    await s.idle()
    got = await store.outbound("L0001", record.id)
    assert got is not None and (got.state, got.provider_id) == ("sent", "SM0000")
    assert carrier.calls == [record.id]  # asked, never resent
    assert carrier.lookups == [record.id]
    assert await kinds(store, record.id) == ["sending", "ambiguous", "reconcile", "sent"]


async def test_an_ambiguous_attempt_the_carrier_never_got_is_sent_again(store: Store) -> None:
    record = await reserve(store)
    carrier = Scripted([SendOutcome(status="ambiguous", code="timeout")])
    clock = at(0)
    s = sender(store, carrier, clock, reconcile_after_s=30)
    s.submit(record)
    await s.idle()
    clock.advance(timedelta(seconds=31))
    await s.poll()
    await s.idle()
    # The carrier never had it: back to the gate (the borrower may have opted out since).
    got = await store.outbound("L0001", record.id)
    assert got is not None and got.state == "deferred"
    assert await history(store) == []
    assert await regate(store, s) == 1
    got = await store.outbound("L0001", record.id)
    assert got is not None and (got.state, got.attempts) == ("sent", 2)
    assert carrier.calls == [record.id, record.id]
    assert await history(store) == [record.id]


async def test_what_cannot_be_reconciled_is_unknown_counted_and_handed_off(store: Store) -> None:
    record = await reserve(store)
    carrier = Scripted([SendOutcome(status="ambiguous", code="timeout")])
    carrier.lookup_answer = "unsupported"
    clock = at(0)
    s = sender(store, carrier, clock, reconcile_after_s=30, reconcile_give_up_s=90)
    s.submit(record)
    await s.idle()
    # Asked after 30 s: cannot tell yet, so asked again later (records settle slowly) ...
    clock.advance(timedelta(seconds=31))
    await s.poll()
    await s.idle()
    got = await store.outbound("L0001", record.id)
    assert got is not None and (got.state, got.ambiguous) == ("sending", True)
    assert await store.head("L0001") is None
    # ... until the give-up time: then a person looks.
    for _ in range(3):
        clock.advance(timedelta(seconds=31))
        await s.poll()
        await s.idle()
    got = await store.outbound("L0001", record.id)
    assert got is not None and got.state == "unknown"
    assert len(carrier.lookups) == 3
    assert (await kinds(store, record.id)).count("reconcile_later") == 2
    assert carrier.calls == [record.id]  # never resent: it may have arrived
    assert await history(store) == [record.id]  # still counted against the caps
    head = await store.head("L0001")
    assert head is not None and head.kind == "delivery_failed"
    assert head.reason is not None and head.reason.startswith("unknown")
    # A late receipt settles it.
    receipt = Receipt(carrier="twilio", message_id=record.id, provider_id="SM9", state="delivered")
    assert await receipts.apply(store, clock, receipt, lambda _a: None) == "applied"
    got = await store.outbound("L0001", record.id)
    assert got is not None and (got.state, got.provider_id) == ("delivered", "SM9")


@pytest.mark.parametrize("crash", ["after_claim", "during_call", "before_settle"])
async def test_a_sender_that_dies_mid_send_is_reconciled_by_the_next(
    store: Store, crash: str
) -> None:
    """The claim is stored; then the process dies — before the call, while the carrier has
    it, or after the carrier answered but before the outcome was stored. The next sender
    waits for the lease to end, asks the carrier, and sends at most once in all."""
    record = await reserve(store)
    carrier, clock = Scripted(), at(0)
    dead = sender(store, carrier, clock, lease_s=60)
    gate = asyncio.Event()

    async def dies(message: CarrierMessage) -> SendOutcome:
        if crash == "during_call" or crash == "before_settle":
            await Scripted.send(carrier, message)  # the carrier accepts it
        if crash == "before_settle":
            return SendOutcome(status="sent", provider_id=carrier.accepted[message.id])
        await gate.wait()  # never returns: the process is gone
        raise AssertionError

    carrier.send = dies  # type: ignore[method-assign]
    if crash == "before_settle":
        real_move = store.move

        async def no_settle(t: Transition) -> bool:
            if t.record.state == "sent":
                raise asyncio.CancelledError  # killed before the write
            return await real_move(t)

        store.move = no_settle  # type: ignore[method-assign]
    dead.submit(record)
    await asyncio.sleep(0.05)
    await dead.close(grace=0)
    if crash == "before_settle":
        store.move = real_move  # type: ignore[method-assign]
    got = await store.outbound("L0001", record.id)
    assert got is not None and got.state == "sending"

    fresh_carrier = Scripted()
    fresh_carrier.accepted = carrier.accepted  # the same provider, asked afterwards
    fresh_carrier.calls = carrier.calls
    nxt = sender(store, fresh_carrier, clock, lease_s=60)
    await nxt.poll()  # the lease still runs: nothing is looked up nor resent
    await nxt.idle()
    assert fresh_carrier.lookups == []
    assert (await store.outbound("L0001", record.id)).state == "sending"  # type: ignore[union-attr]
    clock.advance(timedelta(seconds=61))
    await nxt.poll()
    await nxt.idle()
    if crash == "after_claim":  # the carrier never had it: sent again once the gate agrees
        assert await regate(store, nxt) == 1
    got = await store.outbound("L0001", record.id)
    assert got is not None and got.state == "sent"
    assert len(carrier.accepted) == 1  # the carrier has it exactly once
    assert fresh_carrier.lookups == [record.id]
    assert await history(store) == [record.id]  # charged once for the send that left


# --- receipts ---------------------------------------------------------------------------------


async def sent_record(store: Store) -> tuple[OutboundRecord, Frozen]:
    record = await reserve(store)
    clock = at(0)
    s = sender(store, Scripted(), clock)
    s.submit(record)
    await s.idle()
    got = await store.outbound("L0001", record.id)
    assert got is not None and got.state == "sent"
    return got, clock


def noop(_account_id: str) -> None:
    return None


async def test_receipts_move_forward_only_and_duplicates_change_nothing(store: Store) -> None:
    record, clock = await sent_record(store)
    by_ours = Receipt(carrier="twilio", message_id=record.id, state="delivered", code="0")
    by_theirs = Receipt(carrier="twilio", provider_id="SM0000", state="delivered")
    late_sent = Receipt(carrier="twilio", provider_id="SM0000", state="sent")
    late_failed = Receipt(carrier="twilio", provider_id="SM0000", state="failed", code="30003")
    assert await receipts.apply(store, clock, by_ours, noop) == "applied"
    for r in (by_theirs, late_sent, late_failed, by_ours):
        assert await receipts.apply(store, clock, r, noop) == "duplicate"
    got = await store.outbound("L0001", record.id)
    assert got is not None and got.state == "delivered"
    assert (await kinds(store, record.id))[-1] == "delivered"
    assert await store.head("L0001") is None  # delivered: nothing for the flow


async def test_an_undelivered_receipt_tells_the_conversation(store: Store) -> None:
    record, clock = await sent_record(store)
    kicked: list[str] = []
    r = Receipt(carrier="twilio", provider_id="SM0000", state="undelivered", code="30005")
    assert await receipts.apply(store, clock, r, kicked.append) == "applied"
    head = await store.head("L0001")
    assert head is not None and head.kind == "delivery_failed"
    assert kicked == ["L0001"]
    assert await history(store) == [record.id]  # it left: still counted


async def test_a_receipt_nobody_sent_is_kept_not_refused(store: Store) -> None:
    clock = at(0)
    for r in (
        Receipt(carrier="aliyun", message_id="nope", state="delivered"),
        Receipt(carrier="aliyun", provider_id="nope", state="delivered"),
    ):
        assert await receipts.apply(store, clock, r, noop) == "unmatched"
    assert len(await store.list_unmatched_receipts()) == 2


async def test_a_receipt_that_beats_the_send_result_settles_the_record(store: Store) -> None:
    """Twilio may call back before its API call has returned to us."""
    record = await reserve(store)
    clock = at(0)
    carrier = Scripted()
    s = sender(store, carrier, clock)
    real = carrier.send

    async def slow(message: CarrierMessage) -> SendOutcome:
        outcome = await real(message)
        receipt = Receipt(carrier="twilio", message_id=message.id, state="delivered")
        assert await receipts.apply(store, clock, receipt, noop) == "applied"
        return outcome

    carrier.send = slow  # type: ignore[method-assign]
    s.submit(record)
    await s.idle()
    got = await store.outbound("L0001", record.id)
    assert got is not None and got.state == "delivered"  # never back to "sent"
    assert carrier.calls == [record.id]


async def test_a_redis_outage_while_the_carrier_has_the_message_loses_and_repeats_nothing(
    own_redis_server: RedisServer,
) -> None:
    """Redis stops answering right after the provider accepted the message: storing the
    outcome times out. When Redis is back, either the outcome landed, or the claim's lease
    ends, the carrier is asked, and the message is recorded as sent: the carrier got it once."""
    store = RedisStore.from_url(own_redis_server.url, socket_timeout=2.0)
    try:
        record = await reserve(store)
        carrier, clock = Scripted(), at(0)
        real = carrier.send

        async def outage(message: CarrierMessage) -> SendOutcome:
            outcome = await real(message)
            own_redis_server.pause()  # the answer arrives, the store does not
            return outcome

        carrier.send = outage  # type: ignore[method-assign]
        s = sender(store, carrier, clock, lease_s=30)
        s.submit(record)
        await s.idle()
        own_redis_server.resume()
        # The write that timed out may or may not have reached Redis before it stopped (a
        # paused server still reads its socket when resumed): either is consistent.
        got = await store.outbound("L0001", record.id)
        assert got is not None and got.state in ("sending", "sent")
        stored = got.state == "sent"
        carrier.send = real  # type: ignore[method-assign]
        clock.advance(timedelta(seconds=31))
        await s.poll()
        await s.idle()
        got = await store.outbound("L0001", record.id)
        assert got is not None and got.state == "sent"
        assert carrier.calls == [record.id]  # never twice, whichever it was
        assert carrier.lookups == ([] if stored else [record.id])
        assert await history(store) == [record.id]
    finally:
        own_redis_server.resume()
        await store.close()


async def test_a_record_waiting_for_a_carrier_slot_is_not_claimed_yet(store: Store) -> None:
    """A claim's lease starts the clock on the call: a record in line for the carrier is
    still ``reserved`` (any process may take it), never ``sending`` under a running lease."""
    first = await reserve(store, "【XX金融】一")
    second = await reserve(store, "【XX金融】二")
    carrier, clock = Scripted(), at(0)
    release = asyncio.Event()
    real = carrier.send

    async def slow(message: CarrierMessage) -> SendOutcome:
        await release.wait()
        return await real(message)

    carrier.send = slow  # type: ignore[method-assign]
    s = sender(store, carrier, clock, concurrency=1)
    s.submit(first)
    s.submit(second)
    for _ in range(50):
        await asyncio.sleep(0.01)
    states = {r.id: r.state for r in await store.outbound_records("L0001")}
    assert sorted(states.values()) == ["reserved", "sending"]
    release.set()
    await s.idle()
    assert {r.state for r in await store.outbound_records("L0001")} == {"sent"}
    assert sorted(carrier.calls) == sorted([first.id, second.id])


async def test_a_carrier_refusing_our_set_up_holds_messages_and_reports_it(store: Store) -> None:
    """Wrong credentials fail nothing for good: the message is kept (back to the gate, the
    attempt not counted) and the carrier is marked broken until a call goes through."""
    record = await reserve(store)
    refused = SendOutcome(status="failed", code="20003", detail="auth", config_error=True)
    carrier, clock = Scripted([refused]), at(0)
    s = sender(store, carrier, clock, config_hold_s=60)
    s.submit(record)
    await s.idle()
    got = await store.outbound("L0001", record.id)
    assert got is not None and (got.state, got.attempts) == ("deferred", 0)
    assert got.message.not_before == clock.now() + timedelta(seconds=60)
    assert s.health == {"twilio": "20003: auth"}
    assert await store.head("L0001") is None  # nobody is handed the conversation
    assert await history(store) == []
    clock.advance(timedelta(seconds=61))
    assert await regate(store, s) == 1  # fixed meanwhile: it goes
    got = await store.outbound("L0001", record.id)
    assert got is not None and (got.state, got.attempts) == ("sent", 1)
    assert s.health == {"twilio": None}
    assert await kinds(store, record.id) == ["sending", "held", "sending", "sent"]


async def test_retries_stop_after_the_retry_budget_not_a_fixed_count(store: Store) -> None:
    record = await reserve(store)
    carrier = Scripted([SendOutcome(status="retry", code="CONNECT_ERROR") for _ in range(9)])
    clock = at(0)
    s = sender(store, carrier, clock, max_attempts=100, retry_for_s=600, backoff_cap_s=120)
    s.submit(record)
    await s.idle()
    rounds = 0
    while (got := await store.outbound("L0001", record.id)) and got.state == "deferred":
        clock.advance(timedelta(seconds=121))
        assert await regate(store, s) == 1
        rounds += 1
    assert got is not None and got.state == "failed"
    assert got.detail is not None and "gave up after" in got.detail
    # An outage of ten minutes is ridden out with a handful of calls, then a person is told.
    assert 4 <= len(carrier.calls) <= 7 and rounds == len(carrier.calls) - 1


async def test_a_backlog_waits_in_the_store_not_in_memory(store: Store) -> None:
    """With every carrier slot busy and a line four times as long, further reserved records
    are left in the senders' index; polls take them as room frees up."""
    records = [await reserve(store, f"【XX金融】{i}") for i in range(6)]
    carrier, clock = Scripted(), at(10)  # past the hand-off grace: polls see every record
    release = asyncio.Event()
    real = carrier.send

    async def slow(message: CarrierMessage) -> SendOutcome:
        await release.wait()
        return await real(message)

    carrier.send = slow  # type: ignore[method-assign]
    s = sender(store, carrier, clock, concurrency=1)  # room for 4 sends in this process
    for r in records:
        s.submit(r)
    assert len(s._tasks) == 4
    assert await s.poll() == 0  # no room
    release.set()
    await s.idle()
    assert await s.poll() == 2  # the two left in the store
    await s.idle()
    assert sorted(carrier.calls) == sorted(r.id for r in records)
