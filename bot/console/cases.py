"""The console's JSON API for the case queue (``/api/console/cases…``, ``/api/console/unmatched…``):
the web face of :class:`bot.desk.service.Desk`, which decides everything. The console's own
pages call these routes too (bot/console/static/console.js), so a lender's own desk gets
exactly what the console gets. The guard (bot/console/auth.py) has checked the session and,
on every write, the CSRF token before any handler here runs.

Refusals are the desk's errors, each mapped to one status with its reason: no such case or
account 404, not allowed 403, malformed 400, someone else holds it or it moved on 409 (the
body names who holds it, so a screen can say so).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterator
from typing import TypeVar

from aiohttp import web
from pydantic import BaseModel

from bot.api import read_json
from bot.console.auth import API_PREFIX, current_agent
from bot.console.schemas import (
    CaseAction,
    CaseList,
    CaseResult,
    CaseRow,
    HoldBody,
    LinkBody,
    MessageBody,
    NoteBody,
    PlanBody,
    PromiseBody,
    Queued,
    ReassignBody,
    ResolveBody,
    TemplateList,
    TemplateView,
    UnmatchedList,
    UnmatchedRow,
)
from bot.context import AGENTS, CLOCK, DESK, DESK_SERVICE
from bot.desk.case import Case
from bot.desk.errors import (
    CaseConflict,
    CaseHeld,
    CaseNotFound,
    InvalidRequest,
    PermissionDenied,
    UnmatchedGone,
)
from bot.desk.service import Desk
from bot.desk.view import MessageVerdict as Verdict
from bot.privacy import mask_name, mask_phone, mask_text
from bot.storage.agents import AgentRecord
from bot.transport.inbound import WebhookError

CASES = API_PREFIX + "cases"
CASE = CASES + "/{account_id}"
UNMATCHED = API_PREFIX + "unmatched"
QUEUE_PAGE = 100  # cases listed by default (the queue's top)
MAX_QUEUE_PAGE = 1000
M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")
# desk, agent name, role, account id (from the path), the request's body -> the desk's answer
Act = Callable[[Desk, str, str, str, M], Awaitable[T]]
Refusal = WebhookError  # the app's error middleware writes it as JSON (bot.schemas.Error)


def routes() -> list[web.RouteDef]:
    return [
        web.get(CASES, list_cases),
        web.get(CASE, get_case),
        web.post(CASE + "/reveal", reveal_case),
        web.get(CASE + "/templates", list_templates),
        web.post(CASE + "/messages", send_message),
        web.post(CASE + "/claim", claim),
        web.post(CASE + "/release", release),
        web.post(CASE + "/reassign", reassign),
        web.post(CASE + "/notes", add_note),
        web.post(CASE + "/promise", record_promise),
        web.post(CASE + "/plan", record_plan),
        web.post(CASE + "/hold", set_hold),
        web.post(CASE + "/resolve", resolve),
        web.get(UNMATCHED, list_unmatched),
        web.post(UNMATCHED + "/{provider}/{msg_id}/link", link_unmatched),
        web.post(UNMATCHED + "/{provider}/{msg_id}/dismiss", dismiss_unmatched),
    ]


@contextlib.contextmanager
def refusals() -> Iterator[None]:
    """The desk's errors as statuses (one place: the pages' handlers use it too)."""
    try:
        yield
    except CaseHeld as exc:
        reason = f"已被 {exc.holder} 认领 (held by {exc.holder})"
        raise Refusal(409, reason, holder=exc.holder) from exc
    except (CaseConflict, UnmatchedGone) as exc:
        raise Refusal(409, str(exc)) from exc
    except CaseNotFound as exc:
        raise Refusal(404, str(exc)) from exc
    except PermissionDenied as exc:
        raise Refusal(403, str(exc)) from exc
    except InvalidRequest as exc:
        raise Refusal(400, str(exc)) from exc


def _who(request: web.Request) -> tuple[Desk, AgentRecord]:
    return request.app[DESK_SERVICE], current_agent(request)


def json_of(model: BaseModel, status: int = 200) -> web.Response:
    return web.Response(
        text=model.model_dump_json(),
        status=status,
        content_type="application/json",
        headers={"Cache-Control": "no-store"},
    )


def _flag(request: web.Request, name: str) -> bool:
    value = request.query.get(name, "")
    if value not in ("", "0", "1", "true", "false"):
        raise Refusal(400, f"{name}: 1 or 0, not {value[:20]!r}")
    return value in ("1", "true")


async def queue_rows(
    request: web.Request,
    *,
    mine: bool,
    unassigned: bool,
    reason: str | None,
    limit: int = QUEUE_PAGE,
) -> CaseList:
    """The first ``limit`` open cases in queue order as the filters ask, each with its
    borrower masked and its times, and how many there are in all. An agent works from the
    top; a page of the whole queue would cost every screen a read of every case's account at
    every live update (bench/console.py)."""
    desk, agent = _who(request)
    if reason is not None and len(reason) > 64:
        raise Refusal(400, "reason: at most 64 characters")
    with refusals():
        cases = await desk.list_cases(
            agent.name, agent.role, mine=mine, unassigned=unassigned, reason=reason
        )
    now = request.app[CLOCK].now()
    rows = []
    # Read together: on Redis they leave in one write (bot/storage/resp.py pipelines what one
    # loop iteration issues), not one round trip per case.
    shown = cases[:limit]
    accounts = await asyncio.gather(*(desk.store.get_account(k.account_id) for k in shown))
    for case, account in zip(shown, accounts, strict=True):
        rows.append(
            CaseRow(
                case=case,
                name=mask_name(account.name) if account else "?",
                phone=mask_phone(account.phone) if account else "?",
                waiting_s=int((now - case.opened_at).total_seconds()),
                sla_left_s=int((case.sla_due - now).total_seconds()),
                expired=case.expired(now),
            )
        )
    # The filter offers every configured reason and any other an open case has.
    reasons = {*request.app[DESK].config.sla_minutes, *(k.reason for k in cases)}
    return CaseList(cases=rows, total=len(cases), reasons=sorted(reasons))


async def list_cases(request: web.Request) -> web.Response:
    raw = request.query.get("limit", str(QUEUE_PAGE))
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_QUEUE_PAGE:
        raise Refusal(400, f"limit: a whole number from 1 to {MAX_QUEUE_PAGE}")
    listing = await queue_rows(
        request,
        mine=_flag(request, "mine"),
        unassigned=_flag(request, "unassigned"),
        reason=request.query.get("reason") or None,
        limit=int(raw),
    )
    return json_of(listing)


async def get_case(request: web.Request) -> web.Response:
    """The conversation as an agent sees it, masked: the case, transcript, promises, gate."""
    desk, agent = _who(request)
    with refusals():
        view = await desk.view(agent.name, agent.role, request.match_info["account_id"])
    return json_of(view)


async def reveal_case(request: web.Request) -> web.Response:
    """The same, unmasked; the reveal is audited on the account with the agent's name."""
    desk, agent = _who(request)
    with refusals():
        view = await desk.view(
            agent.name, agent.role, request.match_info["account_id"], reveal=True
        )
    return json_of(view)


async def list_templates(request: web.Request) -> web.Response:
    desk, agent = _who(request)
    with refusals():
        found = await desk.templates(agent.name, agent.role, request.match_info["account_id"])
    return json_of(TemplateList(templates=[TemplateView(**t) for t in found]))


async def _body(request: web.Request, model: type[M]) -> M:
    if request.content_type != "application/json":
        raise Refusal(400, "Content-Type must be application/json")
    body: M = await read_json(request, model)
    return body


async def _act(request: web.Request, model: type[M], call: Act[M, T]) -> T:
    """Reads the JSON body as ``model`` and calls the desk with the signed-in agent, the
    account of the path and the body; the desk's refusals become statuses."""
    desk, agent = _who(request)
    body = await _body(request, model)
    with refusals():
        return await call(desk, agent.name, agent.role, request.match_info["account_id"], body)


async def send_message(request: web.Request) -> web.Response:
    """An agent's message, through the compliance gate: a block says which rule and why and
    queues nothing; a deferral says until when. 200 with the verdict either way."""

    def call(d: Desk, name: str, role: str, account: str, b: MessageBody) -> Awaitable[Verdict]:
        return d.send_message(name, role, account, b.case_id, text=b.text, template=b.template)

    return json_of(await _act(request, MessageBody, call))


async def claim(request: web.Request) -> web.Response:
    case = await _act(request, CaseAction, lambda d, n, r, a, b: d.claim(n, r, a, b.case_id))
    return json_of(CaseResult(case=case))


async def release(request: web.Request) -> web.Response:
    case = await _act(request, CaseAction, lambda d, n, r, a, b: d.release(n, r, a, b.case_id))
    return json_of(CaseResult(case=case))


async def reassign(request: web.Request) -> web.Response:
    agents = request.app[AGENTS]

    async def call(d: Desk, name: str, role: str, account: str, b: ReassignBody) -> Case:
        # Only to someone who can sign in and take it (the desk knows cases, not agents).
        if role == "supervisor":
            target = await agents.get(b.to)
            if target is None or target.disabled:
                raise InvalidRequest(f"没有可用的坐席 {b.to} (no enabled agent {b.to!r})")
        return await d.reassign(name, role, account, b.case_id, b.to)

    return json_of(CaseResult(case=await _act(request, ReassignBody, call)))


async def add_note(request: web.Request) -> web.Response:
    case = await _act(
        request, NoteBody, lambda d, n, r, a, b: d.add_note(n, r, a, b.case_id, b.text)
    )
    return json_of(CaseResult(case=case))


def _queued(queued: bool) -> web.Response:
    return json_of(Queued(queued=queued), status=202)


async def record_promise(request: web.Request) -> web.Response:
    def call(d: Desk, name: str, role: str, account: str, b: PromiseBody) -> Awaitable[bool]:
        return d.record_promise(name, role, account, b.case_id, b.date, b.amount)

    return _queued(await _act(request, PromiseBody, call))


async def record_plan(request: web.Request) -> web.Response:
    def call(d: Desk, name: str, role: str, account: str, b: PlanBody) -> Awaitable[bool]:
        return d.record_plan(name, role, account, b.case_id, b.instalments)

    return _queued(await _act(request, PlanBody, call))


async def set_hold(request: web.Request) -> web.Response:
    def call(d: Desk, name: str, role: str, account: str, b: HoldBody) -> Awaitable[bool]:
        return d.set_hold(name, role, account, b.case_id, b.hold, b.on)

    return _queued(await _act(request, HoldBody, call))


async def resolve(request: web.Request) -> web.Response:
    def call(d: Desk, name: str, role: str, account: str, b: ResolveBody) -> Awaitable[bool]:
        return d.resolve(
            name,
            role,
            account,
            b.case_id,
            b.how,
            to_state=b.to_state,
            promise_date=b.promise_date,
            promise_amount=b.promise_amount,
            note=b.note,
        )

    return _queued(await _act(request, ResolveBody, call))


async def unmatched_rows(request: web.Request) -> UnmatchedList:
    desk, agent = _who(request)
    with refusals():
        messages = await desk.unmatched(agent.name, agent.role)
    return UnmatchedList(
        messages=[
            UnmatchedRow(
                provider=m.provider,
                msg_id=m.msg_id,
                phone=mask_phone(m.phone),
                text=mask_text(m.text),
                received_at=m.received_at,
            )
            for m in messages
        ]
    )


async def list_unmatched(request: web.Request) -> web.Response:
    return json_of(await unmatched_rows(request))


async def link_unmatched(request: web.Request) -> web.Response:
    desk, agent = _who(request)
    body = await _body(request, LinkBody)
    m = request.match_info
    with refusals():
        queued = await desk.link_unmatched(
            agent.name, agent.role, m["provider"], m["msg_id"], body.account_id
        )
    return _queued(queued)


async def dismiss_unmatched(request: web.Request) -> web.Response:
    desk, agent = _who(request)
    m = request.match_info
    with refusals():
        await desk.dismiss_unmatched(agent.name, agent.role, m["provider"], m["msg_id"])
    return web.Response(status=204)
