"""The Redis store's compressed values (bot.storage.redis_pack): what is written is smaller and
reads back the same, values written before compression are still read and moved, the
dictionary never changes, and a damaged value is an error, never a wrong record."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import pytest
import redis.asyncio as aioredis

from bot.outbound.record import queued
from bot.records import AuditEntry, Outbound, QueuedEvent
from bot.storage import keys
from bot.storage.base import Transition
from bot.storage.redis_codec import AUDIT_ENTRIES
from bot.storage.redis_pack import DICTIONARY_1, pack, pack_versioned, unpack, unpack_text
from tests.service.conftest import RedisServer
from tests.service.storehelpers import redis_store_on
from tests.service.test_outbound import PHONE, account

T0 = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)
CONVERSATION = (
    '{"id":"L0001","flow":"collections","flow_version":"c6bf5f70c81c","state":"awaiting_reply",'
    '"account":{"id":"L0001","name":"张三","amount_due":"3200.00","due_date":"2026-11-20",'
    '"last4":"0001"},"started_at":"2026-11-25T02:00:00Z","updated_at":"2026-11-25T02:00:00Z",'
    '"flags":[],"counters":{},"timers":{"timeout":"2026-11-27T02:00:00Z"},"promise":null,'
    '"plan":[],"paid_total":"0","last_payment":null,"last_intent":null}'
)


def message(
    text: str = "【XX金融】张**您好，您尾号0001的借款待还3200.00元，已逾期5天。",
) -> Outbound:
    return Outbound(account_id="L0001", phone=PHONE, text=text, template="t", created_at=T0)


def test_the_dictionary_is_the_one_values_were_written_with() -> None:
    # Changing it makes every stored value unreadable: a new dictionary needs a new first byte.
    assert hashlib.sha256(DICTIONARY_1).hexdigest() == (
        "d90ea84fa4b14bdd928ef286e08ee8de3bb15e94611cca27420c3232d9ddde02"
    )


def test_values_round_trip_and_shrink() -> None:
    record = queued(message()).moved("reserved", T0, carrier="twilio", reserved_at=T0)
    record_json = record.model_dump_json(exclude_none=True)
    audit_json = AUDIT_ENTRIES.dump_json(
        [
            AuditEntry(
                at=T0,
                kind="step",
                detail={"event": "campaign start", "before": "new", "after": "awaiting_reply"},
            ),
            AuditEntry(
                at=T0,
                kind="send",
                detail={"message_id": record.id, "template": "t", "text": record.message.text},
            ),
        ]
    )
    for plain, packed in [
        (CONVERSATION.encode(), pack(CONVERSATION)),
        (audit_json, pack(audit_json)),
        (record_json.encode(), pack_versioned(record_json, record.version)),
    ]:
        assert unpack(packed) == plain
        assert len(packed) < 0.6 * len(plain), (len(packed), len(plain))
    assert pack("") == b""
    assert unpack_text(pack(CONVERSATION)) == CONVERSATION
    # JSON written before compression passes through unchanged.
    assert unpack(CONVERSATION.encode()) == CONVERSATION.encode()
    assert pack_versioned(record_json, 12).startswith(b"\x0212\x00")


def test_a_damaged_value_is_an_error_not_a_wrong_record() -> None:
    packed = pack(CONVERSATION)
    for damaged in (packed[:-5], packed[:1] + b"\xff" * 20, b"\x02" + b"7" * 10):
        with pytest.raises(ValueError, match="cannot be decompressed"):
            unpack(damaged)


async def test_values_written_before_compression_are_read_and_moved(
    redis_server: RedisServer,
) -> None:
    """A store upgraded in place: the conversation, audit and outbound record JSON written by
    the previous version are read, the send moves on (the script still finds the version in
    the JSON), and what it writes next is compressed."""
    async with redis_store_on(redis_server.url) as store:
        await store.upsert_account(account())
        record = queued(message()).moved("reserved", T0, carrier="twilio", reserved_at=T0)
        entry = AuditEntry(at=T0, kind="send", detail={"message_id": record.id})
        async with aioredis.Redis.from_url(redis_server.url) as r:
            await r.set(keys.conversation("L0001"), CONVERSATION)
            await r.rpush(keys.audit("L0001"), AUDIT_ENTRIES.dump_json([entry]))
            await r.rpush(keys.audit("L0001"), entry.model_dump_json())  # one per element
            await r.hset(keys.outbound("L0001"), record.id, record.model_dump_json())

            assert await store.get_conversation("L0001") == CONVERSATION
            assert await store.read_audit("L0001") == [entry, entry]
            assert await store.outbound("L0001", record.id) == record

            sent = record.moved("sent", T0 + timedelta(seconds=1), provider_id="SM1")
            assert not await store.move(Transition(sent, record.version + 1))  # wrong version
            assert await store.move(Transition(sent, record.version, audit=[entry]))
            assert await store.outbound("L0001", record.id) == sent
            raw = await r.hget(keys.outbound("L0001"), record.id)
            assert raw is not None and raw.startswith(b"\x02" + str(sent.version).encode())
            # The compressed record's version is what the next step compares.
            delivered = sent.moved("delivered", T0 + timedelta(seconds=2))
            assert not await store.move(Transition(delivered, record.version))
            assert await store.move(Transition(delivered, sent.version))
            assert (await store.outbound("L0001", record.id)) == delivered
            assert await store.read_audit("L0001") == [entry, entry, entry]

            await store.enqueue("L0001", QueuedEvent(kind="tick", at=T0))
            head = await store.head("L0001")
            assert head is not None
            assert await store.commit("L0001", head.id, CONVERSATION, [entry], [], None)
            stored = await r.get(keys.conversation("L0001"))
            assert stored is not None and stored[:1] == b"\x01"
            assert len(stored) < len(CONVERSATION.encode()) / 2
            assert await store.get_conversation("L0001") == CONVERSATION
