"""Property: whatever borrowers say, whenever they say it, whatever time does, no message that
went out broke the window, the caps, an opt-out, a hold or the third-party rule."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.clock import Clock
from bot.compliance.gate import Gate
from bot.compliance.window import next_allowed
from bot.outbound.setup import sandbox_dispatcher
from bot.pipeline import Pipeline
from bot.records import AccountRecord, QueuedEvent
from bot.storage.memory import MemoryStore
from bot.transport.inbound import InboundSms
from dialogs.registry import Registry
from intents import Understander

SH = ZoneInfo("Asia/Shanghai")
PHONE = "+8613800000001"
REPLIES = [
    "明天还",
    "好的",
    "TD",
    "打错了",
    "我没借过",
    "失业了没钱",
    "能分期吗",
    "转人工",
    "还差多少",
    "滚",
    "不还",
    "已经还了",
    "周五还500",
    "嗯",
    "？？",
    "别发了",
    "下周一还一千",
    "这几天就还",
]
STEPS = st.lists(
    st.one_of(
        st.tuples(st.just("say"), st.sampled_from(REPLIES)),
        st.tuples(st.just("wait"), st.integers(min_value=10, max_value=4 * 24 * 60)),
        st.tuples(st.just("pay"), st.sampled_from(["100.00", "500.00", "3200.00"])),
    ),
    min_size=1,
    max_size=14,
)
START = st.integers(min_value=0, max_value=24 * 60 - 1)  # minute of the day the campaign starts

REGISTRY = Registry.load()
GATE = Gate.load()


async def _scenario(
    nlu: Understander, start_minute: int, steps: list[tuple[str, object]]
) -> MemoryStore:
    t0 = datetime(2026, 12, 2, tzinfo=SH) + timedelta(minutes=start_minute)
    clock = Clock(t0 - Clock().now())
    store = MemoryStore()
    pipeline = Pipeline(
        store, nlu, REGISTRY, sandbox_dispatcher(store, GATE, REGISTRY, clock), clock, GATE
    )
    acc = AccountRecord(
        id="acc-0001",
        name="张三",
        phone=PHONE,
        amount_due=Decimal("3200.00"),
        days_overdue=5,
        due_date=t0.date() - timedelta(days=5),
    )
    await store.upsert_account(acc)
    await pipeline.submit(acc.id, QueuedEvent(kind="start", at=clock.now()), dedup="start")
    await pipeline.idle()
    for kind, arg in steps:
        if kind == "say":
            sms = InboundSms(
                provider="simulator",
                msg_id=uuid.uuid4().hex,
                phone=PHONE,
                text=str(arg),
                received_at=clock.now(),
            )
            await pipeline.receive(sms)
        elif kind == "pay":
            event = QueuedEvent(
                kind="payment", at=clock.now(), amount=Decimal(str(arg)), reference=uuid.uuid4().hex
            )
            await pipeline.submit(acc.id, event)
        else:
            end = clock.now() + timedelta(minutes=int(str(arg)))
            while clock.now() < end:  # let timers fire on the way, as the service's loop does
                clock.advance(min(timedelta(minutes=30), end - clock.now()))
                await pipeline.fire_due_timers()
                await pipeline.idle()
        await pipeline.idle()
    return store


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(start_minute=START, steps=STEPS)
def test_no_sent_message_breaks_a_rule(
    nlu: Understander, start_minute: int, steps: list[tuple[str, object]]
) -> None:
    store = asyncio.run(_scenario(nlu, start_minute, steps))
    pack = GATE.pack("cn")
    checker = GATE.checker(pack)
    sends = asyncio.run(store.send_history(PHONE, datetime(2000, 1, 1, tzinfo=SH)))
    outbound = {m.id: m for m in asyncio.run(store.list_sandbox(10_000))}
    audit = asyncio.run(store.read_audit("acc-0001", 100_000))
    states = [(e.at, e.detail["after"]) for e in audit if e.kind == "step"]

    def state_at(t: datetime) -> str:
        current = "new"
        for when, st_ in states:
            if when <= t:
                current = st_
        return current

    opted_at = min((w for w, s in states if s == "opted_out"), default=None)
    wrong_at = min((w for w, s in states if s == "wrong_number"), default=None)
    for r in sends:
        msg = outbound[r.message_id]
        debt = msg.debt_content or bool(checker.debt_content(msg.text))
        # window: the send time itself was allowed
        assert next_allowed(r.at, [SH], pack.window) == r.at or r.kind == "confirmation", (
            r,
            msg.text,
        )
        # opt-out: afterwards at most one confirmation, without debt content
        if opted_at is not None and r.at >= opted_at:
            assert r.kind == "confirmation" and not debt, (r, msg.text)
        # third party: nothing about the debt to a wrong number
        if wrong_at is not None and r.at >= wrong_at:
            assert not debt, (r, msg.text)
        # holds: no proactive collection while a person owns the case
        if r.kind == "proactive" and debt:
            assert state_at(r.at) not in {"with_agent"}, (r, msg.text, state_at(r.at))
    if opted_at is not None:
        assert sum(r.kind == "confirmation" for r in sends if r.at >= opted_at) <= 1
    for r in sends:  # caps
        day = [x for x in sends if x.at.astimezone(SH).date() == r.at.astimezone(SH).date()]
        assert sum(x.kind == "proactive" for x in day) <= pack.frequency.proactive_max_per_day
        assert sum(x.kind == "reply" for x in day) <= pack.frequency.reply_max_per_day
        week = [
            x for x in sends if r.at - timedelta(days=7) < x.at <= r.at and x.kind == "proactive"
        ]
        assert len(week) <= pack.frequency.proactive_max_per_7d
