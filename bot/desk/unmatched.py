"""Messages from numbers no account has, as the console handles them: listed, linked to an
account (the message then enters that account's conversation as its reply) or dismissed
(kept, with who and when, for audit). Part of :class:`bot.desk.service.Desk`."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable

from bot.clock import Clock
from bot.desk.case import check_agent
from bot.desk.errors import CaseNotFound, UnmatchedGone
from bot.privacy import mask_phone
from bot.records import QueuedEvent, audit_entry
from bot.storage.base import Store
from bot.storage.desk import linked_event
from bot.storage.desk_events import DeskEvent
from bot.transport.inbound import InboundSms

Submit = Callable[[str, QueuedEvent, str | None], Awaitable[bool]]


class UnmatchedMessages:
    store: Store
    submit: Submit
    clock: Clock

    async def unmatched(self, agent: str, role: str, limit: int = 200) -> list[InboundSms]:
        """Messages from numbers no account has, oldest first, waiting to be linked or
        dismissed."""
        check_agent(agent, role)
        return await self.store.list_unmatched(limit)

    async def link_unmatched(
        self, agent: str, role: str, provider: str, msg_id: str, account_id: str
    ) -> bool:
        """Queues the message as the account's inbound reply — once, however many agents
        click (the provider's message id is its de-duplication key, as for any reply) — and
        takes it off the unmatched list. False if it was queued already."""
        check_agent(agent, role)
        sms = await self.store.desk.find_unmatched(provider, msg_id)
        if sms is None:
            raise CaseNotFound(f"no unmatched message {provider}:{msg_id}")
        if await self.store.get_account(account_id) is None:
            raise CaseNotFound(f"no account {account_id!r}")
        event, dedup = linked_event(sms)
        now = self.clock.now()
        # Queued first, then taken off the list: a crash between leaves it listed, and
        # linking again finds it queued already (the same key) and only takes it off.
        queued = await self.submit(account_id, event, dedup)
        if queued:
            await self.store.append_audit(
                account_id,
                [
                    audit_entry(
                        now,
                        "agent",
                        by=agent,
                        do="link_unmatched",
                        msg_id=msg_id,
                        phone=mask_phone(sms.phone),
                    )
                ],
            )
        # Two clicks at once: one queued it (its audit entry names who), and whichever takes
        # it off the list second finds it gone — linked either way, not an error.
        with contextlib.suppress(UnmatchedGone):
            await self.store.desk.take_unmatched(sms, "linked", agent, now, account_id)
        await self._unmatched_changed(agent)
        return queued

    async def dismiss_unmatched(self, agent: str, role: str, provider: str, msg_id: str) -> None:
        """Off the list, kept (with who and when) in the handled list for audit."""
        check_agent(agent, role)
        sms = await self.store.desk.find_unmatched(provider, msg_id)
        if sms is None:
            raise CaseNotFound(f"no unmatched message {provider}:{msg_id}")
        await self.store.desk.take_unmatched(sms, "dismissed", agent, self.clock.now(), None)
        await self._unmatched_changed(agent)

    async def _unmatched_changed(self, by: str) -> None:
        """Other screens' unmatched lists re-read (the event names no number or text)."""
        event = DeskEvent(kind="unmatched", account_id="", at=self.clock.now(), by=by)
        await self.store.desk.events.publish(event)
