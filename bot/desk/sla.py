"""SLA expiry: cases nobody claimed within their reason's SLA (config/desk.yaml) are marked
expired — they go to the top of the queue — with an audit entry on the account that records
the supervisors' notification, and a ``case_expired`` event on the live feed.

Run periodically by every process (``bot.loops.run_loops``); each case is marked once however
many processes look (the store's step checks and marks in one script).
"""

from __future__ import annotations

import logging
from datetime import datetime

from bot.desk.case import Case
from bot.desk.config import DeskConfig
from bot.storage.base import Store
from bot.storage.desk_events import DeskEvent

log = logging.getLogger(__name__)


async def expire_cases(store: Store, config: DeskConfig, now: datetime) -> list[Case]:
    expired: list[Case] = []
    notify = config.notify_supervisors_on_expiry
    for case in await store.desk.due_cases(now):
        if not await store.desk.expire(case, now, notify):
            continue  # claimed, resolved or marked meanwhile
        expired.append(case)
        log.warning(
            "case %s of account %s (%s, %s) is past its SLA unclaimed%s",
            case.id,
            case.account_id,
            case.reason,
            case.priority,
            "; supervisors notified" if notify else "",
        )
        await store.desk.events.publish(
            DeskEvent(
                kind="case_expired",
                account_id=case.account_id,
                at=now,
                case_id=case.id,
                detail={"reason": case.reason, "notify": "supervisors" if notify else None},
            )
        )
    return expired
