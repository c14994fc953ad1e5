"""Retention of personal data (bot/retention): over both stores, a dry run lists exactly what
a run then changes, and nothing else changes; the service's journey aged past the policy."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.desk.case import CaseChange, Resolving
from bot.outbound.carriers.base import Receipt
from bot.outbound.record import queued
from bot.records import audit_entry
from bot.retention.policy import RetentionPolicy, load_retention
from bot.retention.sweep import sweep
from bot.storage.base import Store, Transition
from common.errors import ConfigError
from tests.service.test_desk_contract import commit, opening
from tests.service.test_store_contract import T0, account, commit_head, inbound, outbound, sms

POLICY = RetentionPolicy(
    message_text_days=30,
    audit_days=730,
    outbound_text_days=30,
    unmatched_days=30,
    unmatched_receipts_days=30,
    sandbox_days=7,
)
NOW = T0 + timedelta(days=60)


async def snapshot(store: Store, account_ids: list[str], phones: list[str]) -> dict[str, Any]:
    """Everything the store keeps that retention could touch, or must not, read through the
    seam."""
    per: dict[str, Any] = {}
    for a in account_ids:
        per[a] = {
            "account": await store.get_account(a),
            "conversation": await store.get_conversation(a),
            "audit": await store.read_audit(a, 100_000),
            "records": {r.id: r for r in await store.outbound_records(a)},
            "queued": await store.queued(a),
            "deferred": await store.deferred(a),
            "head": await store.head(a),
            "cases": [await store.desk.case(a), *await store.desk.closed_cases(a)],
        }
    return {
        "accounts": per,
        "opted_out": {p: await store.is_opted_out(p) for p in phones},
        "ledger": {p: await store.send_history(p, T0 - timedelta(days=3650)) for p in phones},
        "unmatched": await store.list_unmatched(100_000),
        "handled": await store.desk.handled_unmatched(100_000),
        "receipts": await store.list_unmatched_receipts(100_000),
        "sandbox": await store.list_sandbox(100_000),
    }


async def populate(store: Store) -> None:
    await store.upsert_account(account("L0001"))
    await store.upsert_account(account("L0002", phone="13800138002"))
    old, recent = T0, NOW - timedelta(days=1)
    # An event's commit: the reply and what the bot answered, with words in them.
    await store.enqueue("L0001", inbound("明天还钱", "SM1", at=old))
    sent = outbound("【XX金融】张三您好，您的借款1234.50元已逾期")
    await commit_head(
        store,
        "L0001",
        audit=[
            audit_entry(old, "inbound", provider="twilio", msg_id="SM1", text="明天还钱"),
            audit_entry(old, "understood", intent="promise_to_pay"),
            audit_entry(old, "send", message_id=sent.id, template="reminder", text=sent.text),
        ],
        outbox=[sent],
    )
    # The gate blocked it (settled, 60 days ago): its text goes, its record stays.
    assert await store.move(Transition(queued(sent).moved("blocked", old), None))
    # Old enough to go whole; recent, kept as it is; an old payment has no words.
    await store.append_audit("L0001", [audit_entry(old - timedelta(days=800), "inbound", text="x")])
    await store.append_audit("L0001", [audit_entry(recent, "inbound", text="最近的回复")])
    await store.append_audit("L0002", [audit_entry(old, "payment", amount="100.00")])
    await store.append_audit("L0002", [audit_entry(old, "agent", by="li", do="note", note="电话")])
    # Still to send: queued in the outbox, never touched.
    await store.enqueue("L0002", inbound("你好", "SM2", at=recent))
    await commit_head(store, "L0002", outbox=[outbound("待发送", "L0002")])
    await store.add_opt_out("+8613800138000")
    await store.add_unmatched(sms("U-old", "陌生号码"))
    fresh = sms("U-new", "新的").model_copy(update={"received_at": recent})
    await store.add_unmatched(fresh)
    for at, ref in ((old, "R-old"), (recent, "R-new"), (None, "R-none")):
        receipt = Receipt(carrier="aliyun", provider_id=ref, state="delivered", at=at)
        await store.add_unmatched_receipt(receipt.model_dump_json())
    await store.record_sandbox(outbound("沙箱旧"))
    await store.record_sandbox(outbound("沙箱新").model_copy(update={"created_at": recent}))
    # A case of L0002 with two notes, an old and a recent one, then closed; and an open case
    # of L0001 with an old note (being worked on: kept until its close).
    for account_id, close in (("L0002", True), ("L0001", False)):
        assert await commit(store, opening(account_id=account_id), account_id)
        case = await store.desk.case(account_id)
        assert case is not None
        await store.desk.claim(account_id, case.id, "li", old)
        await store.desk.add_note(account_id, case.id, "li", "借款人称13912345678是他弟弟", old)
        if close:
            await store.desk.add_note(account_id, case.id, "li", "已回电", recent)
            done = CaseChange(resolve=Resolving(case.id, "li", recent, "closed"))
            assert await commit(store, done, account_id)


PHONES = ["+8613800138000", "+8613800138002"]


async def test_a_run_changes_exactly_what_its_dry_run_listed(store: Store) -> None:
    await populate(store)
    ids = ["L0001", "L0002"]
    before = await snapshot(store, ids, PHONES)
    dry = await sweep(store, POLICY, NOW, apply=False)
    assert await snapshot(store, ids, PHONES) == before  # a dry run changes nothing
    run = await sweep(store, POLICY, NOW, apply=True)
    assert run.items == dry.items and run.counts == dry.counts
    assert dry.counts == {
        "audit_text": 3,  # the reply, the bot's message, the note, of 60 days ago
        "case_notes": 1,  # the closed case's old note (the recent one and the open case's stay)
        "audit": 1,  # 860 days old
        "outbound_text": 1,
        "unmatched": 1,
        "unmatched_handled": 0,
        "unmatched_receipts": 1,  # the recent one and the one without a time stay
        "sandbox": 1,
    }
    after = await snapshot(store, ids, PHONES)
    listed = {(i.where, i.id): i for i in run.items}
    # Everything not listed is as it was; everything listed is redacted or gone.
    for a in ids:
        was, now = before["accounts"][a], after["accounts"][a]
        for k in ("account", "conversation", "queued", "deferred", "head"):
            assert was[k] == now[k]
        for before_case, after_case in zip(was["cases"], now["cases"], strict=True):
            if before_case is None or after_case is None:
                assert before_case == after_case
                continue
            expect = [
                _without_words(n) if (a, f"{before_case.id}/{i}") in listed else n
                for i, n in enumerate(before_case.notes)
            ]
            assert after_case.notes == expect
            assert after_case.model_copy(update={"notes": []}) == before_case.model_copy(
                update={"notes": []}
            )
        kept = []
        for n, entry in enumerate(was["audit"]):
            item = listed.get((a, f"{n}:{entry.kind}@{entry.at.isoformat()}"))
            if item is None:
                kept.append(entry)
            elif item.action == "redact":
                kept.append(_without_words(entry))
        assert now["audit"] == kept
        for mid, record in was["records"].items():
            if (a, mid) in listed:
                assert now["records"][mid].message.text == ""
                assert now["records"][mid].message.params == {}
                assert now["records"][mid].state == record.state
            else:
                assert now["records"][mid] == record
    for k in ("opted_out", "ledger", "handled"):
        assert after[k] == before[k]
    assert [s.msg_id for s in after["unmatched"]] == ["U-new"]
    assert [m.text for m in after["sandbox"]] == ["沙箱新"]
    assert len(after["receipts"]) == 2
    # No personal text in what a run reports.
    shown = str([i.model_dump() for i in run.items])
    assert "明天还钱" not in shown and "张三" not in shown and "电话" not in shown
    assert "13912345678" not in shown
    # A second run finds nothing left to do.
    assert sum((await sweep(store, POLICY, NOW, apply=True)).counts.values()) == 0


def _without_words(entry: Any) -> Any:
    detail = {k: v for k, v in entry.detail.items() if k not in ("text", "note")}
    return entry.model_copy(update={"detail": detail | {"redacted": True}})


def test_a_bad_policy_names_file_line_and_field(tmp_path: Path) -> None:
    path = tmp_path / "retention.yaml"
    path.write_text("message_text_days: 180\naudit_days: 365\nsandbox_days: soon\n")
    with pytest.raises(ConfigError) as exc:
        load_retention(path)
    text = str(exc.value)
    assert f"{path}:2: audit_days:" in text and "730" in text
    assert f"{path}:3: sandbox_days:" in text
    path.write_text("message_text_days: 900\naudit_days: 800\nkeep_forever: 1\n")
    with pytest.raises(ConfigError) as exc:
        load_retention(path)
    assert f"{path}:2: audit_days: 800 is shorter than message_text_days" in str(exc.value)
    assert f"{path}:3: keep_forever:" in str(exc.value)
    with pytest.raises(ConfigError, match="no retention policy file"):
        load_retention(tmp_path / "missing.yaml")


def test_the_shipped_policy_loads() -> None:
    policy = load_retention()
    assert policy.audit_days >= 730 and policy.message_text_days <= policy.audit_days
    assert policy.cutoffs(datetime(2026, 1, 1, tzinfo=UTC)).audit < datetime(2024, 1, 2, tzinfo=UTC)


# --- the service's journey, aged past the policy ---------------------------------------------


@pytest.mark.parametrize("backend", ["memory", "redis"])
async def test_a_journey_aged_past_retention_keeps_the_evidence_not_the_words(
    nlu: Any, backend: str, request: pytest.FixtureRequest
) -> None:
    from bot.context import CLOCK, PIPELINE
    from bot.storage.memory import MemoryStore
    from bot.storage.redis import RedisStore
    from tests.service.apphelpers import AUTH, client, daytime_clock, post_twilio
    from tests.service.apphelpers import account as row

    if backend == "redis":
        import redis.asyncio as aioredis

        url = request.getfixturevalue("redis_server").url
        async with aioredis.Redis.from_url(url) as admin:
            await admin.flushdb()
        store: Store = RedisStore.from_url(url)
    else:
        store = MemoryStore()
    words = ["我下周一还一部分", "已经转了五百", "TD"]
    async with client(nlu, store=store, clock=daytime_clock()) as c:
        acc = row(1)
        r = await c.post("/api/accounts", json={"accounts": [acc], "start": True}, headers=AUTH)
        assert r.status == 200
        await c.app[PIPELINE].idle()
        await post_twilio(c, acc["phone"], words[0], "SM" + "1" * 32)
        await c.app[PIPELINE].idle()
        pay = {"account_id": acc["id"], "amount": "500.00", "reference": "PAY-ret"}
        pay["paid_at"] = c.app[CLOCK].now().isoformat()
        assert (await c.post("/api/payments", json=pay, headers=AUTH)).status == 202
        await post_twilio(c, acc["phone"], words[1], "SM" + "2" * 32)
        await c.app[PIPELINE].idle()
        note = audit_entry(c.app[CLOCK].now(), "agent", by="li.na", do="note", note="借款人称失业")
        await store.append_audit(acc["id"], [note])
        await post_twilio(c, acc["phone"], words[2], "SM" + "3" * 32)
        await c.app[PIPELINE].idle()
        audit_before = await store.read_audit(acc["id"], 100_000)
        assert any(e.detail.get("text") == words[0] for e in audit_before)
        sent_before = len(await store.list_sandbox(100_000))
        # Two hundred days later (past 180 days of texts, well within 3 years of evidence).
        c.app[CLOCK].advance(timedelta(days=200))
        now = c.app[CLOCK].now()
        policy = load_retention()
        dry = await sweep(store, policy, now, apply=False)
        run = await sweep(store, policy, now, apply=True)
        assert run.items == dry.items and run.counts["audit_text"] >= 5
        assert run.counts["audit"] == 0 and run.counts["outbound_text"] >= 2
        audit = await store.read_audit(acc["id"], 100_000)
        assert len(audit) == len(audit_before)  # every entry is still there ...
        flat = str([e.model_dump(mode="json") for e in audit])
        for w in [*words[:2], "借款人称失业", "张三"]:  # ... without the words
            assert w not in flat, [e for e in audit if w in str(e.detail)]
        for r in await store.outbound_records(acc["id"]):
            assert r.message.text == "" or r.state not in ("sent", "delivered", "blocked")
        kinds = [e.kind for e in audit]
        assert kinds.count("inbound") == 3 and "payment" in kinds and "understood" in kinds
        assert any(e.kind == "understood" and e.detail.get("intent") == "stop" for e in audit)
        gate = [e for e in audit if e.kind in ("sent", "blocked", "deferred", "reserved")]
        assert gate, "the gate's decisions are kept"
        # The opt-out survives, and the service still refuses to text the number.
        assert await store.is_opted_out("+86" + acc["phone"].removeprefix("+86"))
        conv = await (await c.get(f"/api/conversations/{acc['id']}", headers=AUTH)).json()
        assert conv["opted_out"] is True and conv["paid_total"] == "500.00"
        await post_twilio(c, acc["phone"], "你们还会发短信吗", "SM" + "4" * 32)
        await c.app[PIPELINE].idle()
        sent = await store.list_sandbox(100_000)
        assert all(not m.debt_content for m in sent[sent_before:])
    await store.close()


# --- the command, end to end, on a private redis-server ---------------------------------------


def test_the_command_lists_then_does_exactly_that(own_redis_server: Any, tmp_path: Path) -> None:
    import asyncio
    import json
    import os
    import subprocess
    import sys

    from bot.storage.redis import RedisStore

    async def fill() -> None:
        store = RedisStore.from_url(own_redis_server.url)
        try:
            await populate(store)
        finally:
            await store.close()

    asyncio.run(fill())
    env = os.environ | {"SMSBOT_REDIS_URL": own_redis_server.url}
    policy = tmp_path / "retention.yaml"
    policy.write_text(
        "message_text_days: 30\naudit_days: 730\noutbound_text_days: 30\n"
        "unmatched_days: 30\nunmatched_receipts_days: 30\nsandbox_days: 7\n"
    )

    def smsbot(*args: str) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-m", "bot.cli", "retention", "run", "--config", str(policy)]
        return subprocess.run(
            [*cmd, "--now", NOW.isoformat(), *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    dry = smsbot("--dry-run", "--list", "--json")
    assert dry.returncode == 0, dry.stderr
    listed = json.loads(dry.stdout)
    assert listed["dry_run"] is True and listed["counts"]["audit_text"] == 3
    assert "明天还钱" not in dry.stdout and "张三" not in dry.stdout
    table = smsbot("--dry-run", "--list")
    assert "audit_text" in table.stdout and "would delete or redact" in table.stdout
    done = smsbot("--list", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["items"] == listed["items"]
    again = json.loads(smsbot("--json").stdout)
    assert sum(again["counts"].values()) == 0
    policy.write_text("audit_days: 10\n")
    bad = smsbot()
    assert bad.returncode == 1 and f"{policy}:1: audit_days:" in bad.stderr
    no_redis = subprocess.run(
        [sys.executable, "-m", "bot.cli", "retention", "run", "--dry-run"],
        env={k: v for k, v in env.items() if k != "SMSBOT_REDIS_URL"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert no_redis.returncode == 2 and "SMSBOT_REDIS_URL is not set" in no_redis.stderr
