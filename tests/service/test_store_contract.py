"""The store seam's contract, run on every implementation (memory and a real Redis).

Tests that only make sense for one implementation (lease expiry, key layout, Redis down) are
at the end and say so in their name.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import pytest
import redis.asyncio as aioredis
from redis.crc import key_slot

from bot.outbound.record import queued
from bot.records import AccountRecord, AuditEntry, Outbound, QueuedEvent
from bot.storage import keys
from bot.storage.base import Store, StoreUnavailable, Transition
from bot.storage.redis import RedisStore
from bot.transport.inbound import InboundSms
from tests.service.storehelpers import CONTRACT_KINDS, open_store, redis_store_on


@pytest.fixture(params=CONTRACT_KINDS)
async def store(request: pytest.FixtureRequest) -> AsyncIterator[Store]:
    """Memory, one Redis, and a Redis Cluster: the contract holds on each."""
    async for opened in open_store(request):
        yield opened


if TYPE_CHECKING:
    from conftest import RedisServer  # tests/service/conftest.py (fixtures only at run time)

T0 = datetime(2024, 5, 1, 9, 0, tzinfo=ZoneInfo("Asia/Shanghai"))


def account(account_id: str = "L0001", phone: str = "13800138000", **kw: object) -> AccountRecord:
    fields: dict[str, object] = {
        "id": account_id,
        "name": "张三",
        "phone": phone,
        "amount_due": Decimal("1234.50"),
        "days_overdue": 12,
        "due_date": date(2024, 4, 19),
    }
    fields.update(kw)
    return AccountRecord.model_validate(fields)


def sms(msg_id: str = "SM1", text: str = "好的，明天还", provider: str = "twilio") -> InboundSms:
    return InboundSms.model_validate(
        {
            "provider": provider,
            "msg_id": msg_id,
            "phone": "+8613800138000",
            "to": "106900001234",
            "text": text,
            "sent_at": T0,
            "received_at": T0 + timedelta(seconds=1),
        }
    )


def inbound(text: str = "好的", msg_id: str = "SM1", at: datetime = T0) -> QueuedEvent:
    return QueuedEvent(kind="inbound", at=at, inbound=sms(msg_id, text))


def tick(at: datetime = T0) -> QueuedEvent:
    return QueuedEvent(kind="tick", at=at)


def outbound(text: str, account_id: str = "L0001") -> Outbound:
    return Outbound(
        account_id=account_id,
        phone="+8613800138000",
        text=text,
        template="reminder",
        codes={"aliyun": "SMS_1"},
        params={"amount": "1234.50"},
        created_at=T0,
    )


def entry(kind: str, n: int = 0) -> AuditEntry:
    return AuditEntry(at=T0 + timedelta(seconds=n), kind=kind, detail={"n": n, "text": "你好"})


async def commit_head(
    store: Store,
    account_id: str,
    *,
    conversation: str = "{}",
    audit: list[AuditEntry] | None = None,
    outbox: list[Outbound] | None = None,
    next_due: datetime | None = None,
) -> QueuedEvent:
    """Commits the account's head event (there must be one) and returns it."""
    event = await store.head(account_id)
    assert event is not None
    assert await store.commit(
        account_id, event.id, conversation, audit or [], outbox or [], next_due
    )
    return event


async def gate_all(store: Store, account_id: str) -> list[Outbound]:
    """Moves every queued message out of the outbox as the gate step does (blocked here);
    what was queued, oldest first."""
    waiting = await store.queued(account_id)
    for m in waiting:
        assert await store.move(Transition(queued(m).moved("blocked", T0), None))
    return waiting


async def defer(store: Store, message: Outbound) -> None:
    """A committed message the gate deferred (``message.not_before`` set)."""
    await store.enqueue(message.account_id, tick())
    conversation = await store.get_conversation(message.account_id) or "{}"
    held = message.model_copy(update={"not_before": None})
    await commit_head(store, message.account_id, conversation=conversation, outbox=[held])
    record = queued(message).moved("deferred", T0)
    assert await store.move(Transition(record, None, defer=True))


async def queue_of(store: Store, account_id: str) -> list[QueuedEvent]:
    """Drains the account's queue through the contract (head + commit) and returns it."""
    drained = []
    while (event := await store.head(account_id)) is not None:
        drained.append(event)
        assert await store.commit(account_id, event.id, "{}", [], [], None)
    return drained


# --- lifecycle -------------------------------------------------------------------------------


async def test_ping_answers_when_the_store_is_up(store: Store) -> None:
    await store.ping()


# --- accounts and the phone index -----------------------------------------------------------


async def test_upsert_reports_new_then_replaces(store: Store) -> None:
    assert await store.get_account("L0001") is None
    assert await store.upsert_account(account(amount_due=Decimal("100.00"))) is True
    assert await store.upsert_account(account(amount_due=Decimal("80.00"))) is False
    got = await store.get_account("L0001")
    assert got == account(amount_due=Decimal("80.00"))
    assert got is not None and got.amount_due == Decimal("80.00") and got.last4 == "0001"
    assert await store.find_account("+8613800138000") == "L0001"


async def test_unknown_phone_and_account(store: Store) -> None:
    assert await store.find_account("+8613900000000") is None
    assert await store.get_account("nobody") is None
    assert await store.get_account("a{b}") is None  # ids from URLs can be anything


async def test_phone_change_repoints_the_index(store: Store) -> None:
    await store.upsert_account(account(phone="13800138000"))
    await store.upsert_account(account(phone="13900139000"))
    assert await store.find_account("+8613800138000") is None
    assert await store.find_account("+8613900139000") == "L0001"


async def test_accounts_are_independent(store: Store) -> None:
    await store.upsert_account(account("L0001", "13800138000"))
    await store.upsert_account(account("L0002", "13900139000"))
    assert await store.find_account("+8613800138000") == "L0001"
    assert await store.find_account("+8613900139000") == "L0002"
    got = await store.get_account("L0002")
    assert got is not None and got.phone == "+8613900139000"


async def test_recycled_number_stays_with_its_new_account(store: Store) -> None:
    # The number moves from L0001 to L0002 (the carrier recycled it); when L0001 is later
    # updated with its own new number, the old number must keep pointing at L0002.
    await store.upsert_account(account("L0001", "13800138000"))
    await store.upsert_account(account("L0002", "13800138000"))
    assert await store.find_account("+8613800138000") == "L0002"
    await store.upsert_account(account("L0001", "13700137000"))
    assert await store.find_account("+8613700137000") == "L0001"
    assert await store.find_account("+8613800138000") == "L0002"


async def test_concurrent_creations_report_one_new(store: Store) -> None:
    results = await asyncio.gather(*(store.upsert_account(account()) for _ in range(10)))
    assert results.count(True) == 1


# --- the per-account queue ------------------------------------------------------------------


async def test_queue_is_fifo_and_round_trips_events(store: Store) -> None:
    assert await store.head("L0001") is None
    events = [
        inbound("好的，明天还", "SM1"),
        QueuedEvent(
            kind="payment",
            at=T0 + timedelta(minutes=1),
            amount=Decimal("500.25"),
            reference="PAY-1",
        ),
        QueuedEvent(kind="agent", at=T0 + timedelta(minutes=2), action="resolved", reason="x"),
        tick(T0 + timedelta(minutes=3)),
    ]
    for event in events:
        assert await store.enqueue("L0001", event) is True
    assert await store.head("L0001") == events[0]
    assert await queue_of(store, "L0001") == events


async def test_enqueue_without_dedup_always_appends(store: Store) -> None:
    event = tick()
    assert await store.enqueue("L0001", event)
    assert await store.enqueue("L0001", event)
    assert len(await queue_of(store, "L0001")) == 2


async def test_dedup_claims_a_key_once(store: Store) -> None:
    first, retry, second = inbound("好的", "SM1"), inbound("好的", "SM1"), inbound("TD", "SM2")
    assert await store.enqueue("L0001", first, dedup="twilio:SM1") is True
    assert await store.enqueue("L0001", retry, dedup="twilio:SM1") is False
    assert await store.enqueue("L0001", second, dedup="twilio:SM2") is True
    # The retry was not queued; the next message was.
    assert [e.id for e in await queue_of(store, "L0001")] == [first.id, second.id]


async def test_dedup_is_not_forgotten_after_processing(store: Store) -> None:
    first = inbound("好的", "SM1")
    assert await store.enqueue("L0001", first, dedup="twilio:SM1")
    await commit_head(store, "L0001")
    # A provider retry arriving after the message was processed is still a duplicate.
    assert await store.enqueue("L0001", inbound("好的", "SM1"), dedup="twilio:SM1") is False
    assert await store.head("L0001") is None


async def test_dedup_keys_are_per_account(store: Store) -> None:
    assert await store.enqueue("L0001", tick(), dedup="payment:REF-1") is True
    assert await store.enqueue("L0002", tick(), dedup="payment:REF-1") is True
    assert await store.head("L0001") is not None
    assert await store.head("L0002") is not None


async def test_concurrent_enqueues_of_one_key_claim_it_once(store: Store) -> None:
    events = [inbound("好的", "SM1") for _ in range(20)]
    results = await asyncio.gather(*(store.enqueue("L0001", e, dedup="twilio:SM1") for e in events))
    assert results.count(True) == 1
    queued = await queue_of(store, "L0001")
    assert [e.id for e in queued] == [events[results.index(True)].id]


# --- commit ---------------------------------------------------------------------------------


async def test_commit_pops_the_head_and_writes_everything(store: Store) -> None:
    first, second = inbound("好的", "SM1"), inbound("TD", "SM2")
    await store.enqueue("L0001", first)
    await store.enqueue("L0001", second)
    assert await store.get_conversation("L0001") is None
    audit = [entry("inbound", 0), entry("understood", 1), entry("step", 2)]
    out = [outbound("您好，请于今日还款"), outbound("回复TD退订")]
    assert await store.commit("L0001", first.id, '{"state": "promised"}', audit, out, None)
    assert await store.head("L0001") == second
    assert await store.get_conversation("L0001") == '{"state": "promised"}'
    assert await store.read_audit("L0001") == audit
    assert await store.queued("L0001") == out  # kept until the gate moves each one
    assert [r.state for r in await store.outbound_records("L0001")] == ["queued", "queued"]
    assert await gate_all(store, "L0001") == out
    assert await store.queued("L0001") == []


async def test_commit_of_a_non_head_event_changes_nothing(store: Store) -> None:
    first, second = inbound("好的", "SM1"), inbound("TD", "SM2")
    await store.enqueue("L0001", first)
    await store.enqueue("L0001", second)
    # The second event is queued but not at the head; an unknown id is nowhere.
    for event_id in (second.id, "no-such-event"):
        ok = await store.commit(
            "L0001", event_id, '{"x": 1}', [entry("step")], [outbound("hi")], None
        )
        assert ok is False
    assert await store.head("L0001") == first
    assert await store.get_conversation("L0001") is None
    assert await store.read_audit("L0001") == []
    assert await store.queued("L0001") == []
    assert await store.due_accounts(T0 + timedelta(days=365)) == []


async def test_commit_on_an_empty_queue_is_refused(store: Store) -> None:
    event = inbound()
    assert await store.commit("L0001", event.id, "{}", [], [], None) is False
    await store.enqueue("L0001", event)
    await commit_head(store, "L0001")
    # The same event committed twice (a second worker, a retry): only the first counts.
    assert await store.commit("L0001", event.id, '{"again": 1}', [entry("x")], [], None) is False
    assert await store.get_conversation("L0001") == "{}"
    assert await store.read_audit("L0001") == []


async def test_commit_replaces_the_conversation_and_appends_audit(store: Store) -> None:
    for i in range(3):
        await store.enqueue("L0001", inbound(f"m{i}", f"SM{i}"))
    for i in range(3):
        await commit_head(store, "L0001", conversation=f'{{"n": {i}}}', audit=[entry("step", i)])
    assert await store.get_conversation("L0001") == '{"n": 2}'
    assert [e.detail["n"] for e in await store.read_audit("L0001")] == [0, 1, 2]


async def test_commit_with_nothing_to_append(store: Store) -> None:
    await store.enqueue("L0001", tick())
    await commit_head(store, "L0001", conversation="{}")
    assert await store.read_audit("L0001") == []
    assert await store.queued("L0001") == []
    assert await store.get_conversation("L0001") == "{}"


async def test_commit_of_a_long_batch(store: Store) -> None:
    # More arguments than one Lua unpack() comfortably takes.
    await store.enqueue("L0001", tick())
    audit = [entry("step", i) for i in range(1200)]
    out = [outbound(f"m{i}") for i in range(700)]
    await commit_head(store, "L0001", audit=audit, outbox=out)
    assert await store.read_audit("L0001", limit=5000) == audit
    assert await store.queued("L0001") == out


# --- timers ---------------------------------------------------------------------------------


async def test_next_due_is_indexed_and_found_when_due(store: Store) -> None:
    await store.enqueue("L0001", tick())
    due = T0 + timedelta(hours=2)
    await commit_head(store, "L0001", next_due=due)
    assert await store.due_accounts(due - timedelta(microseconds=1)) == []
    assert await store.due_accounts(due) == ["L0001"]  # due at exactly ``now``
    assert await store.due_accounts(due + timedelta(days=3)) == ["L0001"]


async def test_due_accounts_are_ordered_and_limited(store: Store) -> None:
    # Created in an order that is neither the id order nor the due order.
    dues = {"L0003": T0 + timedelta(minutes=5), "L0001": T0 + timedelta(minutes=30)}
    dues |= {"L0002": T0 + timedelta(minutes=1), "L0004": T0 + timedelta(hours=5)}
    for account_id, due in dues.items():
        await store.enqueue(account_id, tick())
        await commit_head(store, account_id, next_due=due)
    now = T0 + timedelta(hours=1)
    assert await store.due_accounts(now) == ["L0002", "L0003", "L0001"]
    assert await store.due_accounts(now, limit=2) == ["L0002", "L0003"]
    assert await store.due_accounts(now, limit=1) == ["L0002"]


async def test_backlog_counts_what_is_due_and_how_late(store: Store) -> None:
    empty = await store.backlog(T0)
    assert empty == {"timers": (0, 0.0), "sends": (0, 0.0)}
    for account_id, due in {
        "L0001": T0 - timedelta(seconds=90),
        "L0002": T0 + timedelta(1),
    }.items():
        await store.enqueue(account_id, tick())
        await commit_head(store, account_id, next_due=due)
    a = outbound("a", account_id="L0003")
    await store.enqueue("L0003", tick())
    await commit_head(store, "L0003", outbox=[a])
    reserved = queued(a).moved("reserved", T0, carrier="sandbox", reserved_at=T0)
    later = T0 + timedelta(seconds=30)
    assert await store.move(Transition(reserved, None, [entry("gate", 0)], due=later))
    assert await store.backlog(T0) == {"timers": (1, 90.0), "sends": (0, 0.0)}
    backlog = await store.backlog(later + timedelta(seconds=2))
    assert backlog == {"timers": (1, 122.0), "sends": (1, 2.0)}


async def test_due_times_compare_as_instants_in_any_zone(store: Store) -> None:
    due = datetime(2024, 5, 1, 1, 0, tzinfo=UTC)  # 09:00 in Shanghai
    await store.enqueue("L0001", tick())
    await commit_head(store, "L0001", next_due=due)
    assert await store.due_accounts(T0 - timedelta(seconds=1)) == []
    assert await store.due_accounts(T0) == ["L0001"]


async def test_next_due_moves_later_and_earlier(store: Store) -> None:
    for due in (T0 + timedelta(hours=1), T0 + timedelta(hours=3), T0 + timedelta(minutes=10)):
        await store.enqueue("L0001", tick())
        await commit_head(store, "L0001", next_due=due)
        assert await store.due_accounts(due - timedelta(seconds=1)) == []
        assert await store.due_accounts(due) == ["L0001"]


async def test_next_due_none_removes_the_account_from_the_index(store: Store) -> None:
    await store.enqueue("L0001", tick())
    await commit_head(store, "L0001", next_due=T0)
    await store.enqueue("L0001", tick())
    await commit_head(store, "L0001", next_due=None)
    assert await store.due_accounts(T0 + timedelta(days=365)) == []


async def test_a_refused_commit_never_delays_or_drops_a_timer(store: Store) -> None:
    # Whatever a stale worker's refused commit carries, the indexed timer still fires on time.
    await store.enqueue("L0001", tick())
    await commit_head(store, "L0001", next_due=T0)
    stale = tick()
    await store.enqueue("L0001", tick())
    for next_due in (T0 + timedelta(days=2), None):
        assert not await store.commit("L0001", stale.id, "{}", [], [], next_due)
        assert await store.due_accounts(T0) == ["L0001"]


# --- the per-account lock -------------------------------------------------------------------


async def test_lock_is_exclusive_until_released(store: Store) -> None:
    mine, theirs = store.lock("L0001"), store.lock("L0001")
    assert await mine.acquire() is True
    assert await theirs.acquire() is False
    assert await mine.acquire() is False  # not re-entrant
    assert await mine.refresh() is True
    await mine.release()
    assert await mine.refresh() is False
    assert await theirs.acquire() is True
    assert await theirs.refresh() is True
    await theirs.release()


async def test_release_by_a_non_owner_does_nothing(store: Store) -> None:
    mine, theirs = store.lock("L0001"), store.lock("L0001")
    assert await mine.acquire()
    await theirs.release()
    assert await theirs.refresh() is False
    assert await store.lock("L0001").acquire() is False
    assert await mine.refresh() is True
    await mine.release()


async def test_locks_of_different_accounts_are_independent(store: Store) -> None:
    a, b = store.lock("L0001"), store.lock("L0002")
    assert await a.acquire() and await b.acquire()
    await a.release()
    await b.release()


async def test_concurrent_acquires_grant_one(store: Store) -> None:
    locks = [store.lock("L0001") for _ in range(10)]
    results = await asyncio.gather(*(lock.acquire() for lock in locks))
    assert results.count(True) == 1
    await locks[results.index(True)].release()


async def test_refresh_without_acquire_is_false(store: Store) -> None:
    assert await store.lock("L0001").refresh() is False


# --- a drain's combined steps (one round trip each on Redis) --------------------------------


async def test_acquire_and_load_reads_only_once_the_lock_is_taken(store: Store) -> None:
    await store.upsert_account(account())
    first, second = inbound("好的", "SM1"), inbound("TD", "SM2")
    await store.enqueue("L0001", first)
    await store.enqueue("L0001", second)
    deferred = _deferred_msg("d1", T0 + timedelta(hours=1))
    held = deferred.model_copy(update={"not_before": None})
    await commit_head(store, "L0001", conversation='{"n": 1}', outbox=[held])
    record = queued(deferred).moved("deferred", T0)
    assert await store.move(Transition(record, None, defer=True))
    mine, theirs = store.lock("L0001"), store.lock("L0001")
    loaded = await mine.acquire_and_load()
    assert loaded is not None
    assert (loaded.account, loaded.conversation) == (account(), '{"n": 1}')
    assert (loaded.deferred, loaded.head) == ([deferred], second)
    assert await theirs.acquire_and_load() is None  # held: nothing is read
    assert await mine.release_and_check() is True  # the second event still waits
    loaded = await theirs.acquire_and_load()
    assert loaded is not None and loaded.head == second
    await theirs.release()


async def test_enqueue_and_acquire_queues_then_takes_the_lock_if_free(store: Store) -> None:
    await store.upsert_account(account("L0001"))
    older, mine, retry = inbound("好的", "SM1"), inbound("明天还", "SM2"), inbound("明天还", "SM2")
    await store.enqueue("L0001", older)
    lock = store.lock("L0001")
    accepted, loaded = await lock.enqueue_and_acquire(mine, dedup="twilio:SM2")
    assert accepted and loaded is not None
    assert (loaded.head, loaded.account) == (older, account("L0001"))  # the queue's head
    assert await store.lock("L0001").acquire() is False  # held by the caller now
    # A provider's retry: refused, queued nothing, took nothing.
    assert await store.lock("L0001").enqueue_and_acquire(retry, dedup="twilio:SM2") == (
        False,
        None,
    )
    # The lock is someone else's: queued, for them to find.
    other = inbound("TD", "SM3")
    assert await store.lock("L0001").enqueue_and_acquire(other, dedup="twilio:SM3") == (
        True,
        None,
    )
    await commit_head(store, "L0001")
    await commit_head(store, "L0001")
    assert await store.head("L0001") == other
    await lock.release()


async def test_acquire_and_load_of_an_empty_account(store: Store) -> None:
    lock = store.lock("L0009")
    loaded = await lock.acquire_and_load()
    assert loaded is not None
    assert (loaded.account, loaded.conversation, loaded.deferred, loaded.head) == (
        None,
        None,
        [],
        None,
    )
    assert await lock.release_and_check() is False
    assert await store.lock("L0009").acquire() is True  # released


async def test_lock_commit_goes_on_to_the_next_event_then_takes_the_outbox(store: Store) -> None:
    events = [inbound("好的", "SM1"), inbound("TD", "SM2")]
    for event in events:
        await store.enqueue("L0001", event)
    lock = store.lock("L0001", ttl_ms=60_000)
    loaded = await lock.acquire_and_load()
    assert loaded is not None and loaded.head == events[0]
    a, b = outbound("a"), outbound("b")
    progress = await lock.commit(events[0].id, '{"n": 1}', [entry("step", 1)], [a], T0)
    assert (progress.committed, progress.held, progress.head) == (True, True, events[1])
    assert progress.outbox == []  # still queued work: the outbox waits for the last commit
    assert await store.pending_accounts() == ["L0001"]
    progress = await lock.commit(events[1].id, '{"n": 2}', [entry("step", 2)], [b], None)
    assert (progress.committed, progress.held, progress.head) == (True, True, None)
    assert progress.outbox == [a, b]  # the drain gates them; they stay stored until then
    assert await store.pending_accounts() == ["L0001"]
    assert await gate_all(store, "L0001") == [a, b]
    assert await store.get_conversation("L0001") == '{"n": 2}'
    assert [e.detail["n"] for e in await store.read_audit("L0001")] == [1, 2]
    assert await store.due_accounts(T0 + timedelta(days=1)) == []
    assert await store.pending_accounts() == []
    assert await lock.release_and_check() is False


async def test_lock_commit_lets_go_when_idle_and_only_then(store: Store) -> None:
    first, second = inbound("好的", "SM1"), inbound("TD", "SM2")
    await store.enqueue("L0001", first)
    await store.enqueue("L0001", second)
    lock = store.lock("L0001", ttl_ms=60_000)
    assert await lock.acquire_and_load() is not None
    # Another event waits: the lock is kept, whatever the caller asked.
    progress = await lock.commit(first.id, "{}", [], [], None, release_if_idle=True)
    assert (progress.head, progress.released) == (second, False)
    # Something to send: kept too, and the outbox is the caller's.
    await store.enqueue("L0001", tick())
    progress = await lock.commit(second.id, "{}", [], [outbound("hi")], None)
    assert progress.head is not None
    progress = await lock.commit(progress.head.id, "{}", [], [], None, release_if_idle=True)
    assert ([m.text for m in progress.outbox], progress.released) == (["hi"], False)
    assert await lock.refresh() is True
    await gate_all(store, "L0001")  # the drain's gate step empties the outbox
    # Nothing queued, nothing to send: the commit itself let go.
    last = tick()
    await store.enqueue("L0001", last)
    progress = await lock.commit(
        last.id, '{"n": 9}', [entry("step")], [], None, release_if_idle=True
    )
    assert (progress.committed, progress.released, progress.waiting) == (True, True, False)
    assert await lock.refresh() is False
    assert await store.get_conversation("L0001") == '{"n": 9}'
    other = store.lock("L0001")
    assert await other.acquire() is True  # free for whoever comes next
    await other.release()


async def test_lock_commit_of_a_stale_event_is_refused_but_goes_on(store: Store) -> None:
    event = inbound()
    await store.enqueue("L0001", event)
    lock = store.lock("L0001")
    assert await lock.acquire_and_load() is not None
    await store.enqueue("L0001", inbound("TD", "SM2"))
    progress = await lock.commit("no-such-event", "{}", [entry("x")], [outbound("x")], None)
    assert (progress.committed, progress.held, progress.head) == (False, True, event)
    assert await store.read_audit("L0001") == []
    assert await store.get_conversation("L0001") is None
    await lock.release()


async def test_lock_commit_without_the_lease_commits_and_leaves_the_rest(store: Store) -> None:
    # The lease was lost (a long pause): the commit still counts (the event was at the head),
    # but the next event and the outbox belong to whoever holds the lock now.
    await store.enqueue("L0001", tick())
    await store.enqueue("L0001", tick())
    lost = store.lock("L0001")
    loaded = await lost.acquire_and_load()
    assert loaded is not None and loaded.head is not None
    await lost.release()
    owner = store.lock("L0001")
    assert await owner.acquire()
    progress = await lost.commit(loaded.head.id, "{}", [], [outbound("hi")], None)
    assert (progress.committed, progress.held, progress.head, progress.outbox) == (
        True,
        False,
        None,
        [],
    )
    assert [m.text for m in await store.queued("L0001")] == ["hi"]
    assert await lost.release_and_check() is True  # the second tick waits for the owner
    assert await owner.refresh() is True  # a non-owner's release changed nothing
    await owner.release()


# --- outbox, opt-out, audit, unmatched, sandbox ---------------------------------------------


async def test_the_outbox_is_fifo_across_commits_and_each_message_leaves_once(
    store: Store,
) -> None:
    assert await store.queued("L0001") == []
    await store.enqueue("L0001", tick())
    await store.enqueue("L0001", tick())
    await commit_head(store, "L0001", outbox=[outbound("a"), outbound("b")])
    await commit_head(store, "L0001", outbox=[outbound("c")])
    waiting = await store.queued("L0001")
    assert [m.text for m in waiting] == ["a", "b", "c"]
    # Two gate steps racing for one message (a lost lock): exactly one moves it.
    record = queued(waiting[1]).moved("blocked", T0)
    moved = await asyncio.gather(*(store.move(Transition(record, None)) for _ in range(3)))
    assert sorted(moved) == [False, False, True]
    assert [m.text for m in await store.queued("L0001")] == ["a", "c"]


async def test_opt_out(store: Store) -> None:
    assert await store.is_opted_out("+8613800138000") is False
    await store.add_opt_out("+8613800138000")
    await store.add_opt_out("+8613800138000")
    assert await store.is_opted_out("+8613800138000") is True
    assert await store.is_opted_out("+8613900139000") is False


async def test_audit_appends_in_order_and_reads_the_latest(store: Store) -> None:
    assert await store.read_audit("L0001") == []
    await store.append_audit("L0001", [entry("inbound", 0), entry("blocked", 1)])
    await store.append_audit("L0001", [])
    await store.enqueue("L0001", tick())
    await commit_head(store, "L0001", audit=[entry("step", 2)])
    await store.append_audit("L0001", [entry("sent", 3)])
    entries = await store.read_audit("L0001")
    assert [e.kind for e in entries] == ["inbound", "blocked", "step", "sent"]
    assert entries[0] == entry("inbound", 0)
    assert [e.kind for e in await store.read_audit("L0001", limit=2)] == ["step", "sent"]
    assert await store.read_audit("L0002") == []


async def test_audit_limit_counts_entries_whatever_the_writes(store: Store) -> None:
    # Five entries in two writes, then one in a commit: the limit is in entries.
    await store.append_audit("L0001", [entry("inbound", n) for n in range(5)])
    await store.append_audit("L0001", [entry("blocked", 5), entry("blocked", 6)])
    await store.enqueue("L0001", tick())
    await commit_head(store, "L0001", audit=[entry("step", 7)])
    for limit in (1, 2, 3, 4, 8, 9, 1000):
        got = await store.read_audit("L0001", limit=limit)
        assert [e.detail["n"] for e in got] == list(range(8))[-limit:], limit
    assert await store.read_audit("L0001", limit=0) == []


async def test_unmatched_kept_once_per_provider_message(store: Store) -> None:
    assert await store.list_unmatched() == []
    assert await store.add_unmatched(sms("SM1", "你是谁")) is True
    assert await store.add_unmatched(sms("SM1", "你是谁")) is False  # provider retry
    assert await store.add_unmatched(sms("SM1", "other", provider="aliyun")) is True
    assert await store.add_unmatched(sms("SM2", "再见")) is True
    got = await store.list_unmatched()
    assert got == [sms("SM1", "你是谁"), sms("SM1", "other", provider="aliyun"), sms("SM2", "再见")]
    assert [m.text for m in await store.list_unmatched(limit=2)] == ["other", "再见"]


async def test_sandbox_lists_the_latest_in_order(store: Store) -> None:
    assert await store.list_sandbox() == []
    messages = [outbound(f"m{i}") for i in range(5)]
    for message in messages:
        await store.record_sandbox(message)
    assert await store.list_sandbox() == messages
    assert await store.list_sandbox(limit=2) == messages[-2:]


# --- recovery -------------------------------------------------------------------------------


async def test_pending_accounts_have_events_or_unsent_messages(store: Store) -> None:
    assert await store.pending_accounts() == []
    await store.enqueue("L0002", tick())
    await store.enqueue("L0001", tick(), dedup="twilio:SM1")
    await store.upsert_account(account("L0003", "13700137000"))  # nothing to do
    assert await store.pending_accounts() == ["L0001", "L0002"]
    await commit_head(store, "L0001", outbox=[outbound("hi")])
    await commit_head(store, "L0002")
    assert await store.pending_accounts() == ["L0001"]  # its message is not gated yet
    assert len(await gate_all(store, "L0001")) == 1
    assert await store.pending_accounts() == []


# --- Redis only -----------------------------------------------------------------------------


@pytest.fixture
async def redis_store(redis_server: RedisServer) -> AsyncIterator[RedisStore]:
    async with redis_store_on(redis_server.url) as store:
        yield store


async def test_redis_lock_lease_expires(redis_store: RedisStore) -> None:
    crashed = redis_store.lock("L0001", ttl_ms=100)
    assert await crashed.acquire()
    other = redis_store.lock("L0001", ttl_ms=100)
    assert await other.acquire() is False
    await asyncio.sleep(0.25)
    assert await other.acquire() is True  # the holder died without releasing
    assert await crashed.refresh() is False  # and finds out when it next refreshes
    await crashed.release()  # must not release the new owner's lease
    assert await redis_store.lock("L0001").acquire() is False
    await other.release()


async def test_redis_refresh_extends_the_lease(redis_store: RedisStore) -> None:
    lock = redis_store.lock("L0001", ttl_ms=500)
    assert await lock.acquire()
    for _ in range(4):
        await asyncio.sleep(0.15)
        assert await lock.refresh() is True
    # 600 ms after acquiring a 500 ms lease: still held thanks to the refreshes.
    assert await redis_store.lock("L0001").acquire() is False
    await lock.release()


async def test_redis_keys_of_one_account_share_a_slot(
    redis_store: RedisStore, redis_server: RedisServer
) -> None:
    await redis_store.upsert_account(account("L0001"))
    await redis_store.enqueue("L0001", tick(), dedup="twilio:SM1")
    await redis_store.enqueue("L0001", tick())
    lock = redis_store.lock("L0001")
    assert await lock.acquire()
    await commit_head(
        redis_store,
        "L0001",
        audit=[entry("step")],
        outbox=[outbound("hi")],
        next_due=T0,
    )
    async with aioredis.Redis.from_url(redis_server.url) as admin:
        all_keys = {k.decode() if isinstance(k, bytes) else k for k in await admin.keys("*")}
        per_account = {k for k in all_keys if k.startswith("smsbot:{acc:L0001}:")}
        assert {k.rsplit(":", 1)[-1] for k in per_account} >= {
            "account",
            "queue",
            "conversation",
            "audit",
            "outbox",
            "lock",
        }
        assert keys.seen("L0001", "twilio:SM1") in per_account
        assert len({key_slot(k.encode()) for k in per_account}) == 1
        assert all_keys - per_account == {keys.phone("+8613800138000"), keys.DUE}
        assert all(k.startswith(keys.PREFIX) for k in all_keys)
        # De-duplication claims expire after a long time, the lock with its lease; the
        # account's data never does.
        assert 29 * 86400 < await admin.ttl(keys.seen("L0001", "twilio:SM1")) <= 30 * 86400
        assert 0 < await admin.pttl(keys.lock("L0001")) <= 30_000
        for key in (keys.account, keys.queue, keys.conversation, keys.audit, keys.outbox):
            assert await admin.ttl(key("L0001")) == -1
    await lock.release()


async def test_redis_send_ledger_keeps_eight_days(
    redis_store: RedisStore, redis_server: RedisServer
) -> None:
    from bot.records import SendRecord

    phone = "+8613800138000"
    for i, day in enumerate((0, 2, 9)):
        record = SendRecord(
            at=T0 + timedelta(days=day),
            account_id="L0001",
            message_id=f"m{i}",
            kind="proactive",
            text_hash="h",
        )
        await redis_store.record_send(phone, record)
    # The send of day 9 dropped day 0's (9 days old); day 2's (7 days old) is kept.
    history = await redis_store.send_history(phone, T0 - timedelta(days=1))
    assert [r.message_id for r in history] == ["m1", "m2"]
    async with aioredis.Redis.from_url(redis_server.url) as admin:
        assert 7 * 86400 < await admin.ttl(keys.sends(phone)) <= 8 * 86400


async def test_redis_send_ledger_stays_compact_and_reads_older_entries(
    redis_store: RedisStore, redis_server: RedisServer
) -> None:
    from bot.compliance.gate import text_hash
    from bot.ids import new_id
    from bot.records import SendRecord
    from bot.storage.redis_codec import ledger_release, score

    phone = "+8613800138000"

    def record(minute: int) -> SendRecord:
        return SendRecord(
            at=T0 + timedelta(minutes=minute),
            account_id="LN000012345",
            message_id=new_id(),
            kind="proactive",
            text_hash=text_hash(f"第{minute}条"),
        )

    old, new = record(0), record(1)
    async with aioredis.Redis.from_url(redis_server.url) as admin:
        # Members under zset-max-listpack-value (64 bytes): one phone's ledger stays a
        # listpack (about 0.2 KB, not 1.1 KB: bench/campaign.py).
        await redis_store.record_send(phone, new)
        assert await admin.object("encoding", keys.sends(phone)) == b"listpack"
        # An entry written before the compact members: its JSON, scored by its time.
        await admin.zadd(keys.sends(phone), {old.model_dump_json(): score(old.at)})
        assert await redis_store.send_history(phone, T0) == [old, new]
        # Releasing a charge removes it in either form.
        for r in (old, new):
            await admin.zrem(*ledger_release(phone, r)[1:])
        assert await redis_store.send_history(phone, T0) == []


async def test_redis_audit_is_one_element_per_write_and_reads_older_entries(
    redis_store: RedisStore, redis_server: RedisServer
) -> None:
    async with aioredis.Redis.from_url(redis_server.url) as admin:
        # Written before entries were grouped: one entry per element.
        await admin.rpush(keys.audit("L0001"), entry("inbound", 0).model_dump_json())
        await redis_store.append_audit("L0001", [entry("understood", 1), entry("step", 2)])
        await redis_store.enqueue("L0001", tick())
        await commit_head(redis_store, "L0001", audit=[entry("send", 3), entry("sent", 4)])
        await redis_store.append_audit("L0001", [entry("gate", 5)])
        assert await admin.llen(keys.audit("L0001")) == 4
    got = await redis_store.read_audit("L0001")
    assert [(e.kind, e.detail["n"]) for e in got] == [
        ("inbound", 0),
        ("understood", 1),
        ("step", 2),
        ("send", 3),
        ("sent", 4),
        ("gate", 5),
    ]
    assert [e.detail["n"] for e in await redis_store.read_audit("L0001", limit=4)] == [2, 3, 4, 5]


async def test_redis_event_is_read_back_unparsed_by_the_process_that_queued_it(
    redis_store: RedisStore, redis_server: RedisServer
) -> None:
    event = inbound("明天还", "SM1")
    assert await redis_store.enqueue("L0001", event, dedup="twilio:SM1")
    assert not await redis_store.enqueue("L0001", inbound("明天还", "SM1"), dedup="twilio:SM1")
    other = RedisStore.from_url(redis_server.url)  # another process: parses what is stored
    try:
        assert await other.head("L0001") == event
    finally:
        await other.close()
    assert await redis_store.head("L0001") is event  # the object it queued (bot.memo)
    assert len(redis_store._queued) == 0  # the retry left nothing behind; read once
    assert await redis_store.head("L0001") == event  # read again: parsed


def test_redis_keys_reject_account_ids_that_break_the_hash_tag() -> None:
    for bad in ("", "a{b", "a}b"):
        with pytest.raises(ValueError, match="account id"):
            keys.queue(bad)
    assert keys.account_of(keys.queue("L0001"), keys.QUEUE) == "L0001"
    assert keys.account_of(keys.seen("L0001", "x}:queue"), keys.QUEUE) is None
    assert keys.account_of(keys.outbox("L0001"), keys.QUEUE) is None


async def test_redis_pending_accounts_ignore_lookalike_keys(redis_store: RedisStore) -> None:
    # A de-duplication key whose text ends like a queue key is not an account's queue.
    await redis_store.enqueue("L0001", tick(), dedup="x}:queue")
    await commit_head(redis_store, "L0001")
    assert await redis_store.pending_accounts() == []


async def test_redis_sandbox_is_capped(
    redis_store: RedisStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("bot.storage.redis_codec.SANDBOX_MAX", 3)
    messages = [outbound(f"m{i}") for i in range(5)]
    for message in messages:
        await redis_store.record_sandbox(message)
    assert await redis_store.list_sandbox() == messages[-3:]


async def test_redis_scripts_are_reloaded_after_a_script_flush(
    redis_store: RedisStore, redis_server: RedisServer
) -> None:
    await redis_store.enqueue("L0001", tick(), dedup="a")
    await redis_store.upsert_account(account(phone="13800138000"))
    async with aioredis.Redis.from_url(redis_server.url) as admin:
        await admin.script_flush()
    # Every script-backed operation still works (as after a Redis restart).
    assert await redis_store.enqueue("L0001", tick(), dedup="b")
    assert await redis_store.upsert_account(account(phone="13900139000")) is False
    assert await redis_store.find_account("+8613800138000") is None
    await commit_head(redis_store, "L0001", next_due=T0)
    async with aioredis.Redis.from_url(redis_server.url) as admin:
        await admin.script_flush()
    await commit_head(redis_store, "L0001", next_due=None)
    assert await redis_store.due_accounts(T0) == []
    async with aioredis.Redis.from_url(redis_server.url) as admin:
        await admin.script_flush()
    assert await redis_store.lock("L0001").acquire()
    assert await redis_store.add_unmatched(sms())


async def test_redis_commit_stands_when_only_the_index_update_fails(
    redis_store: RedisStore, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # Moving a timer later takes a second call after the commit; if Redis drops then, the
    # commit has happened and the index is left early (the safe side), never late.
    await redis_store.enqueue("L0001", tick())
    await redis_store.enqueue("L0001", tick())
    await commit_head(redis_store, "L0001", next_due=T0)

    call = redis_store._pipe.call

    async def down_for_zadd(*commands: tuple[object, ...]) -> list[object]:
        if commands[0][0] == "ZADD" and commands[0][2] != "LT":  # step 2, not step 1's ZADD LT
            raise StoreUnavailable("Redis at test is unavailable (ZADD): connection reset")
        return await call(*commands)

    monkeypatch.setattr(redis_store._pipe, "call", down_for_zadd)
    await commit_head(
        redis_store, "L0001", conversation='{"n": 2}', next_due=T0 + timedelta(days=1)
    )
    assert await redis_store.get_conversation("L0001") == '{"n": 2}'
    assert await redis_store.due_accounts(T0) == ["L0001"]
    assert "due-timer index stays early" in caplog.text


async def test_redis_store_unavailable_when_nothing_listens() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # free once closed: nothing listens there
    store = RedisStore.from_url(f"redis://127.0.0.1:{port}/0")
    try:
        with pytest.raises(StoreUnavailable, match="unavailable"):
            await store.ping()
        with pytest.raises(StoreUnavailable):
            await store.enqueue("L0001", tick(), dedup="twilio:SM1")
        with pytest.raises(StoreUnavailable):
            await store.lock("L0001").acquire()
    finally:
        await store.close()


async def test_redis_down_then_back(own_redis_server: RedisServer) -> None:
    store = RedisStore.from_url(own_redis_server.url, socket_timeout=0.5)
    try:
        await store.upsert_account(account())
        assert await store.enqueue("L0001", inbound(), dedup="twilio:SM1")
        lock = store.lock("L0001")

        own_redis_server.stop()
        calls = [
            store.ping(),
            store.enqueue("L0001", inbound("TD", "SM2"), dedup="twilio:SM2"),
            store.head("L0001"),
            store.commit("L0001", "x", "{}", [], [], T0),
            lock.acquire(),
            store.pending_accounts(),
            store.due_accounts(T0),
            store.find_account("+8613800138000"),
        ]
        for call in calls:
            with pytest.raises(StoreUnavailable, match=r"127\.0\.0\.1"):
                await call

        # Back (empty: the test server keeps nothing) — the same store object works again.
        own_redis_server.start()
        await store.ping()
        assert await store.enqueue("L0001", inbound("TD", "SM2"), dedup="twilio:SM2")
        assert await lock.acquire()
        await commit_head(store, "L0001", next_due=T0)
        assert await store.due_accounts(T0) == ["L0001"]
        await lock.release()
    finally:
        await store.close()


async def test_redis_paused_times_out_then_recovers(own_redis_server: RedisServer) -> None:
    store = RedisStore.from_url(own_redis_server.url, socket_timeout=0.3)
    try:
        await store.upsert_account(account())
        own_redis_server.pause()
        try:
            with pytest.raises(StoreUnavailable, match="Timeout"):
                await store.get_account("L0001")
        finally:
            own_redis_server.resume()
        await store.ping()
        assert await store.get_account("L0001") == account()
    finally:
        await store.close()


# --- compliance support: per-account facts, deferred messages, the per-phone send ledger ------


def _deferred_msg(message_id: str, at: datetime) -> Outbound:
    return Outbound(
        id=message_id,
        account_id="L0001",
        phone="+8613800138000",
        text="【XX金融】提醒",
        template="t",
        created_at=T0,
        not_before=at,
    )


async def test_account_ids_and_meta(store: Store) -> None:
    await store.upsert_account(account("L0002", "13900139000"))
    await store.upsert_account(account("L0001"))
    assert await store.account_ids() == ["L0001", "L0002"]
    assert await store.get_meta("L0001", "preferences") is None
    await store.set_meta("L0001", "preferences", '{"a": 1}')
    await store.set_meta("L0001", "preferences", '{"a": 2}')
    assert await store.get_meta("L0001", "preferences") == '{"a": 2}'
    assert await store.get_meta("L0002", "preferences") is None


async def test_a_deferred_message_leaves_the_deferred_list_once(store: Store) -> None:
    await defer(store, _deferred_msg("m1", T0 + timedelta(hours=10)))
    await defer(store, _deferred_msg("m2", T0 + timedelta(hours=11)))
    assert [m.id for m in await store.deferred("L0001")] == ["m1", "m2"]
    assert [m.not_before for m in await store.deferred("L0001")] == [
        T0 + timedelta(hours=10),
        T0 + timedelta(hours=11),
    ]
    gone = queued(_deferred_msg("m1", T0)).moved("superseded", T0)
    moved = await asyncio.gather(
        store.move(Transition(gone, None)), store.move(Transition(gone, None))
    )
    assert sorted(moved) == [False, True]
    assert [m.id for m in await store.deferred("L0001")] == ["m2"]
    assert (await store.outbound("L0001", "m1")).state == "superseded"  # type: ignore[union-attr]
    nope = queued(_deferred_msg("nope", T0)).moved("blocked", T0)
    assert await store.move(Transition(nope, None)) is False


async def test_raising_the_due_time_never_hides_a_deferred_message(store: Store) -> None:
    """A sender puts a message back to the gate off the account's lock (index, message,
    index again: bot.outbound.settle); a drain that read the deferred list before the message
    was there raises the index meanwhile. Whatever the order, the message is due on time (a
    kill-9 test found one held until the account's next timer)."""
    await store.upsert_account(account())
    at = T0 + timedelta(hours=1)
    await store.lower_due("L0001", at)  # the sender: index first
    await defer(store, _deferred_msg("m1", at))  # then the message
    await store.set_due("L0001", T0 + timedelta(days=2))  # a drain's exact index, set after
    assert await store.due_accounts(at) == ["L0001"]
    # The same through a commit's own index step (the exact time written after it).
    await store.enqueue("L0001", tick())
    await commit_head(store, "L0001", next_due=T0 + timedelta(days=3))
    assert await store.due_accounts(at) == ["L0001"]
    await store.set_due("L0001", None)  # nothing due but the message: it still is
    assert await store.due_accounts(at) == ["L0001"]
    assert await store.due_accounts(at - timedelta(seconds=1)) == []


async def test_send_ledger_by_time(store: Store) -> None:
    from bot.records import SendRecord

    phone = "+8613800138000"
    for i, kind in enumerate(["proactive", "reply", "confirmation"]):
        await store.record_send(
            phone,
            SendRecord(
                at=T0 + timedelta(days=i),
                account_id="L0001",
                message_id=f"m{i}",
                kind=kind,
                text_hash="h",
            ),
        )
    assert [r.message_id for r in await store.send_history(phone, T0)] == ["m0", "m1", "m2"]
    assert [r.message_id for r in await store.send_history(phone, T0 + timedelta(hours=1))] == [
        "m1",
        "m2",
    ]
    assert await store.send_history("+8613900000000", T0) == []


async def test_a_reserved_send_is_charged_and_marked_in_one_step(store: Store) -> None:
    phone = "+8613800138000"
    a, b = outbound("a"), outbound("b")
    await store.enqueue("L0001", tick())
    await commit_head(store, "L0001", outbox=[a, b])
    first = queued(a).moved("reserved", T0, carrier="sandbox", reserved_at=T0)
    due = T0 + timedelta(seconds=5)
    t = Transition(
        first, None, [entry("gate", 0)], charge=first.ledger_entry(), first_contact=True, due=due
    )
    assert await store.move(t)
    facts = await store.gate_facts("L0001", phone, T0 - timedelta(days=1))
    assert (facts.history, facts.contacted) == ([first.ledger_entry()], True)
    assert await store.get_meta("L0001", "contacted") == T0.isoformat()
    assert await store.due_sends(due - timedelta(seconds=1)) == []
    assert await store.due_sends(due) == [("L0001", a.id)]
    assert await store.message_account(a.id) == "L0001"

    # A later send is not a first contact; the mark keeps the first time.
    later = T0 + timedelta(hours=1)
    second = queued(b).moved("reserved", later, carrier="sandbox", reserved_at=later)
    t = Transition(second, None, [entry("gate", 1)], charge=second.ledger_entry(), due=later)
    assert await store.move(t)
    assert await store.get_meta("L0001", "contacted") == T0.isoformat()
    assert [r.message_id for r in await store.send_history(phone, T0)] == [a.id, b.id]
    assert [e.detail["n"] for e in await store.read_audit("L0001")] == [0, 1]

    # A permanent failure releases exactly its own charge and settles the record.
    stored = await store.outbound("L0001", b.id)
    assert stored == second
    failed = second.moved("failed", later, code="21211")
    event = QueuedEvent(kind="delivery_failed", at=later, reason="21211")
    t = Transition(
        failed,
        second.version,
        [entry("failed", 2)],
        release=second.ledger_entry(),
        undue=True,
        event=event,
        invalid_number=True,
    )
    assert await store.move(t)
    assert [r.message_id for r in await store.send_history(phone, T0)] == [a.id]
    assert await store.due_sends(later + timedelta(days=1)) == [("L0001", a.id)]
    assert await store.head("L0001") == event
    assert (await store.gate_facts("L0001", phone, T0)).invalid_number is True
    assert await store.move(t) is False  # the version moved on: a stale writer changes nothing
    assert [r.state for r in await store.outbound_records("L0001")] == ["reserved", "failed"]


async def test_a_message_charged_again_has_one_ledger_entry(store: Store) -> None:
    """Back at the gate after a crash that lost its charge's release, a message is charged
    again when the gate reserves it: one entry, at the later time, on every store (Redis's
    member carries no time, so the second ZADD replaces the first)."""
    phone = "+8613800138000"
    a = outbound("a")
    await store.enqueue("L0001", tick())
    await commit_head(store, "L0001", outbox=[a])
    first = queued(a).moved("reserved", T0, carrier="sandbox", reserved_at=T0)
    assert await store.move(Transition(first, None, charge=first.ledger_entry()))
    later = T0 + timedelta(minutes=5)
    held = first.moved("deferred", later, reserved_at=None)
    assert await store.move(Transition(held, first.version, defer=True))  # release lost
    again = held.moved("reserved", later, reserved_at=later)
    assert await store.move(Transition(again, None, charge=again.ledger_entry()))
    assert await store.send_history(phone, T0 - timedelta(days=1)) == [again.ledger_entry()]


async def test_transitions_compare_and_set_on_the_version(store: Store) -> None:
    a = outbound("a")
    await store.enqueue("L0001", tick())
    await commit_head(store, "L0001", outbox=[a])
    reserved = queued(a).moved("reserved", T0, carrier="twilio", reserved_at=T0)
    assert await store.move(Transition(reserved, None, due=T0))
    claims = [reserved.moved("sending", T0, lease=f"s{i}") for i in range(4)]
    won = await asyncio.gather(*(store.move(Transition(c, reserved.version)) for c in claims))
    assert won.count(True) == 1  # of four senders, exactly one claims the send
    holder = claims[won.index(True)]
    assert await store.outbound("L0001", a.id) == holder
    sent = holder.moved("sent", T0, provider_id="SM123")
    t = Transition(sent, holder.version, undue=True, provider_index=("twilio", "SM123"))
    assert await store.move(t)
    assert await store.locate("twilio", "SM123") == ("L0001", a.id)
    assert await store.locate("aliyun", "SM123") is None
    assert await store.due_sends(T0 + timedelta(days=1)) == []
    assert await store.message_account("nope") is None


async def test_opt_out_from_a_provider_code_and_the_senders_index(store: Store) -> None:
    a = outbound("a")
    await store.enqueue("L0001", tick())
    await commit_head(store, "L0001", outbox=[a])
    reserved = queued(a).moved("reserved", T0, carrier="twilio", reserved_at=T0)
    assert await store.move(Transition(reserved, None, due=T0, opt_out=True))
    assert await store.is_opted_out(a.phone) is True
    assert await store.due_sends(T0, limit=0) == []
    await store.forget_send("L0001", a.id)
    assert await store.due_sends(T0 + timedelta(days=1)) == []


async def test_unmatched_receipts_are_kept_newest_last(store: Store) -> None:
    assert await store.list_unmatched_receipts() == []
    for i in range(3):
        await store.add_unmatched_receipt(f'{{"n": {i}}}')
    assert await store.list_unmatched_receipts(limit=2) == ['{"n": 1}', '{"n": 2}']
    assert await store.list_unmatched_receipts(limit=0) == []


async def test_token_buckets_are_shared_and_refill(store: Store) -> None:
    # burst 3 at 2/s: three at once, then the fourth waits half a second.
    waits = [await store.take_tokens("carrier:x", 2.0, 3, T0) for _ in range(4)]
    assert waits[:3] == [0.0, 0.0, 0.0]
    assert waits[3] == pytest.approx(0.5)
    assert await store.take_tokens("carrier:x", 2.0, 3, T0 + timedelta(seconds=0.5)) == 0.0
    # Another bucket is its own.
    assert await store.take_tokens("carrier:y", 2.0, 3, T0) == 0.0


async def test_tokens_taken_many_at_once(store: Store) -> None:
    # burst 5 at 10/s: five of eight at once, none more at that instant; 0.25 s refills 2.5,
    # of which two whole tokens are taken and the half stays for later (with 0.1 s more: 1.5).
    assert await store.take_up_to("campaign:x", 10.0, 5, 8, T0) == 5
    assert await store.take_up_to("campaign:x", 10.0, 5, 8, T0) == 0
    assert await store.take_up_to("campaign:x", 10.0, 5, 8, T0 + timedelta(seconds=0.25)) == 2
    assert await store.take_up_to("campaign:x", 10.0, 5, 3, T0 + timedelta(seconds=0.35)) == 1
    # Fewer asked than there are: only those; nothing asked, nothing taken.
    assert await store.take_up_to("campaign:y", 10.0, 5, 2, T0) == 2
    assert await store.take_up_to("campaign:y", 10.0, 5, 0, T0) == 0
    assert await store.take_up_to("campaign:y", 10.0, 5, 9, T0) == 3
    # The same bucket as take_tokens: what one takes the other no longer has.
    assert await store.take_tokens("campaign:y", 10.0, 5, T0) == pytest.approx(0.1)


async def test_send_ledger_round_trips_our_ids_and_any_other(store: Store) -> None:
    from bot.compliance.gate import text_hash
    from bot.ids import new_id
    from bot.records import SendRecord

    phone = "+8613800138000"
    kinds = ("proactive", "reply", "confirmation")
    records = [
        SendRecord(
            at=T0 + timedelta(minutes=i, microseconds=7),
            account_id="L0001",
            message_id=new_id(),
            kind=kind,
            text_hash=text_hash(f"您好 {i}"),
        )
        for i, kind in enumerate(kinds)
    ]
    records.append(  # an id of someone else's making, a hash of another length
        SendRecord(
            at=T0 + timedelta(minutes=5),
            account_id="L0002",
            message_id="ext-1",
            kind="reply",
            text_hash="abc",
        )
    )
    for r in records:
        await store.record_send(phone, r)
    assert await store.send_history(phone, T0) == records
    facts = await store.gate_facts("L0001", phone, T0)
    assert list(facts.history) == records


async def test_load_and_gate_facts_read_together(store: Store) -> None:
    from bot.records import SendRecord

    empty = await store.load("L0001")
    assert (empty.account, empty.conversation, empty.deferred) == (None, None, [])
    await store.upsert_account(account("L0001"))
    await store.enqueue("L0001", QueuedEvent(kind="start", at=T0))
    head = await store.head("L0001")
    assert head is not None
    await store.commit("L0001", head.id, '{"c": 1}', [], [], None)
    await defer(store, _deferred_msg("m1", T0 + timedelta(hours=1)))
    loaded = await store.load("L0001")
    assert loaded.account == account("L0001")
    assert loaded.conversation == '{"c": 1}'
    assert [m.id for m in loaded.deferred] == ["m1"]

    phone = "+8613800138000"
    facts = await store.gate_facts("L0001", phone, T0)
    assert (facts.opted_out, facts.history, facts.preferences, facts.contacted) == (
        False,
        [],
        None,
        False,
    )
    await store.add_opt_out(phone)
    await store.set_meta("L0001", "preferences", "{}")
    await store.set_meta("L0001", "contacted", T0.isoformat())
    record = SendRecord(at=T0, account_id="L0001", message_id="m", kind="reply", text_hash="h")
    await store.record_send(phone, record)
    facts = await store.gate_facts("L0001", phone, T0 - timedelta(days=1))
    assert (facts.opted_out, facts.history, facts.preferences, facts.contacted) == (
        True,
        [record],
        "{}",
        True,
    )


async def test_lower_due_only_ever_brings_the_due_time_forward(store: Store) -> None:
    """A message sent back to the gate step makes its account due at its time at the latest,
    never later than a timer that was due earlier (and an unindexed account becomes due)."""
    await store.lower_due("L0001", T0 + timedelta(hours=2))
    assert await store.due_accounts(T0 + timedelta(hours=2)) == ["L0001"]
    await store.lower_due("L0001", T0 + timedelta(hours=1))
    assert await store.due_accounts(T0 + timedelta(hours=1)) == ["L0001"]
    await store.lower_due("L0001", T0 + timedelta(hours=3))  # later: changes nothing
    assert await store.due_accounts(T0 + timedelta(hours=1)) == ["L0001"]
