"""The Redis store's reads for reports over many accounts (campaign status and export).

``Store.account_facts`` built from the per-account methods costs seven groups a member, each
a task and a future (0.14 ms a member over 10,000, 0.3 ms at 1,000,000: bench/campaign.py).
Here a batch is two groups (0.08–0.1 ms a member, 100 s for 1,000,000): every member's
reads in one (one write and one read on the connection; on a cluster, reads only, so every
primary's share leaves at once), then the suppression list for the phones found. Decoding
is the per-account methods' own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from bot.storage import keys
from bot.storage.base import AUDIT_READ, NO_FACTS, AccountFacts
from bot.storage.redis_codec import account_record, newest_entries
from bot.storage.redis_outbound import records_of, records_reads
from bot.storage.redis_pack import unpack_text
from bot.storage.resp import Connection

_READS = 7  # commands per account below


class RedisReports:
    """Mixed into RedisStore."""

    _pipe: Connection

    async def account_facts(self, account_ids: Sequence[str]) -> list[AccountFacts]:
        usable = [a for a in account_ids if keys.usable_account_id(a)]
        commands: list[tuple[Any, ...]] = []
        for a in usable:
            commands += [
                ("GET", keys.account(a)),
                ("GET", keys.conversation(a)),
                *records_reads(a),
                ("LRANGE", keys.audit(a), -AUDIT_READ, -1),
                ("EXISTS", keys.case(a)),
                ("LLEN", keys.cases(a)),
            ]
        replies = await self._pipe.call(*commands) if commands else []
        found: dict[str, AccountFacts] = {}
        for n, a in enumerate(usable):
            raw, conversation, past, waiting, audit, case, closed = replies[
                n * _READS : (n + 1) * _READS
            ]
            found[a] = AccountFacts(
                account=account_record(raw) if raw is not None else None,
                conversation=unpack_text(conversation) if conversation is not None else None,
                records=records_of(past, waiting),
                audit=newest_entries(audit, AUDIT_READ),
                opted_out=False,
                handed_off=bool(case) or bool(closed),
            )
        phones = sorted({f.account.phone for f in found.values() if f.account is not None})
        if phones:  # SMISMEMBER: Redis 6.2, as ZADD LT already needs
            flags = await self._pipe.one("SMISMEMBER", keys.OPT_OUT, *phones)
            out = {p for p, flag in zip(phones, flags, strict=True) if flag}
            for a, f in found.items():
                if f.account is not None and f.account.phone in out:
                    found[a] = replace(f, opted_out=True)
        return [found.get(a, NO_FACTS) for a in account_ids]
