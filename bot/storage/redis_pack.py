"""The Redis store's largest long-lived values, compressed: conversations, outbound records and
audit elements.

Why: they are JSON that repeats the same field names and phrases in every account, and a
started conversation keeps them for months. zstd with a fixed dictionary of that JSON's
skeleton (below) takes a campaign start's outbound record from 930 to 300 bytes, its
conversation from 450 to 145 and each of its two audit elements from 490 to 145
(bench/campaign.py prints the memory per conversation), for 2-4 µs to compress and 1-3 µs to
read back (4 compressions per account started). Older versions cannot read these values: README,
"Upgrading across a stored-format change".

Format (the first byte tells, so values written before compression are read as they were):
- ``{`` or ``[``: plain JSON (older data);
- ``\\x01`` + zstd frame: compressed with dictionary 1;
- ``\\x02<version>\\x00`` + zstd frame: an outbound record, its version in clear because the
  store's transition script compares it (bot.storage.redis_outbound) and Lua cannot decompress.

The dictionary is part of the stored format: a value written with it can only be read with
it. It never changes; a better one would be dictionary 2 under a new first byte, with 1 kept
for reading. tests/service/test_redis_pack.py pins its digest.
"""

from __future__ import annotations

import hashlib

import zstandard

_PLAIN = b"\x01"
_VERSIONED = b"\x02"

# Field names, enum values and the fixed wording collection texts share; the commonest last
# (a match close to the end of the dictionary is the cheapest to refer to).
DICTIONARY_1 = (
    "您的借款已逾期天，请尽快还款。如有疑问或困难，请回复本短信或致电客服热线，回T退订。"
    "您好，尾号的借款待还元，已逾期天，请通过官方App还款。我们已收到您的还款承诺，"
    '{"kind":"inbound","detail":{"text":"","intents":[],"entities":{}}},'
    '{"kind":"intent","detail":{"intent":"promise_to_pay","score":1.0,"date":"2026-'
    '{"kind":"receipt","detail":{"message_id":"","state":"delivered","code":"DELIVRD"}},'
    '{"kind":"handoff","detail":{"reason":""}},{"kind":"opt_out","detail":{}},'
    '"promise":{"date":"2026-","amount":"","status":"open"},"plan":[{"due":"2026-","amount":""}]'
    '"state":"delivered","code":"DELIVRD","final_at":"2026-","next_at":"2026-","lease":"'
    '{"id":"","flow":"collections","flow_version":"","state":"awaiting_reply",'
    '"account":{"id":"","name":"","amount_due":"","due_date":"2026-","last4":""},'
    '"started_at":"2026-","updated_at":"2026-","flags":[],"counters":{},"timers":{"timeout":"'
    '"promise":null,"plan":[],"paid_total":"0","last_payment":null,"last_intent":null}'
    '[{"at":"2026-","kind":"step","detail":{"event":"campaign start","before":"new",'
    '"after":"awaiting_reply"}},{"at":"2026-","kind":"send","detail":{"message_id":"",'
    '"template":"first_reminder","text":"【】"}},{"at":"2026-","kind":"schedule",'
    '"detail":{"timer":"timeout","at":"2026-"}}]'
    '[{"at":"2026-","kind":"gate","detail":{"message_id":"","template":"first_reminder",'
    '"send_kind":"proactive","verdict":"send","rules":[],"reasons":[]}},{"at":"2026-",'
    '"kind":"sent","detail":{"message_id":"","carrier":"sandbox","provider_id":""}}]'
    '{"message":{"id":"","account_id":"","phone":"+861","text":"【】","template":"'
    'first_reminder","codes":{},"params":{"name":"","last4":"","amount_due":"",'
    '"days_overdue":""},"segments":1,"debt_content":true,"created_at":"2026-",'
    '"kind":"proactive","approved":false,"fingerprint":"","paces":{"timeout":"2026-"}},'
    '"state":"sent","version":1,"updated_at":"2026-","carrier":"sandbox","reserved_at":"2026-'
    '","attempts":1,"first_attempt_at":"2026-","ambiguous":false,"provider_id":"","sent_at":"'
).encode()
DICTIONARY_1_SHA256 = "d90ea84fa4b14bdd928ef286e08ee8de3bb15e94611cca27420c3232d9ddde02"
if hashlib.sha256(DICTIONARY_1).hexdigest() != DICTIONARY_1_SHA256:
    # An edited dictionary would make every value written with it unreadable: refuse to start.
    raise RuntimeError("bot.storage.redis_pack: dictionary 1 changed; it must never change")

# zstd's fast level -1 rather than 3: on the values of 1,500 campaign starts (bench/campaign.py)
# 9 µs an account instead of 18 µs, for 50 bytes more (outbound record 298 B against 269 B,
# conversation 144 B against 134 B, audit elements 144 B against 139 B). Reading is the same
# (the level is not part of the format).
_LEVEL = -1
_DICT = zstandard.ZstdCompressionDict(DICTIONARY_1, dict_type=zstandard.DICT_TYPE_RAWCONTENT)
_DICT.precompute_compress(level=_LEVEL)
# One compressor and decompressor for the process: the store runs on one event loop thread.
# The frame keeps its content size (the decompressor needs it to size its output in one go)
# and no dictionary id (a raw-content dictionary has none; the first byte names it).
_COMPRESS = zstandard.ZstdCompressor(
    level=_LEVEL,
    dict_data=_DICT,
    write_content_size=True,
    write_checksum=False,
    write_dict_id=False,
).compress
_DECOMPRESS = zstandard.ZstdDecompressor(dict_data=_DICT).decompress


def pack(json_text: str | bytes) -> bytes:
    """A JSON value as stored ('' stays '': the scripts read it as "nothing")."""
    if not json_text:
        return b""
    data = json_text.encode() if isinstance(json_text, str) else json_text
    return _PLAIN + _COMPRESS(data)


def pack_versioned(json_text: str | bytes, version: int) -> bytes:
    """An outbound record as stored: its version readable by the transition script."""
    data = json_text.encode() if isinstance(json_text, str) else json_text
    return _VERSIONED + str(version).encode() + b"\x00" + _COMPRESS(data)


def unpack(raw: bytes) -> bytes:
    """The JSON of a stored value, compressed or not."""
    head = raw[:1]
    try:
        if head == _PLAIN:
            return _DECOMPRESS(raw[1:])
        if head == _VERSIONED:
            return _DECOMPRESS(raw[raw.index(b"\x00") + 1 :])
    except (zstandard.ZstdError, ValueError) as exc:
        # As unreadable JSON would (pydantic's ValidationError is a ValueError too).
        raise ValueError(f"a stored value cannot be decompressed: {exc}") from exc
    return raw


def unpack_text(raw: bytes | str) -> str:
    return unpack(raw).decode() if isinstance(raw, bytes) else raw
