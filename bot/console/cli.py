"""``smsbot agents``: who may sign in to the console, on the store the service is configured
with (``SMSBOT_REDIS_URL``; without it the memory store, which only ``serve`` itself sees, so
the commands refuse to run there rather than pretend to have done something)."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from bot.clock import Clock
from bot.console import agents as ops
from bot.storage.agents import ROLES, AgentRecord, AgentStore, open_agent_store
from common.errors import UsageError

T = TypeVar("T")
ROLE_LABELS = {"agent": "客服 agent", "supervisor": "主管 supervisor"}


def register(sub: Any) -> None:
    p = sub.add_parser("agents", help="console sign-ins: add, passwd, list, disable, enable")
    agents = p.add_subparsers(dest="agents_command", required=True, metavar="ACTION")

    add = agents.add_parser("add", help="create an agent (asks for the password twice)")
    add.add_argument("name")
    add.add_argument("--role", choices=ROLES, required=True)
    _password_flag(add)
    add.set_defaults(handler=_add)

    passwd = agents.add_parser("passwd", help="set a new password (ends the agent's sessions)")
    passwd.add_argument("name")
    _password_flag(passwd)
    passwd.set_defaults(handler=_passwd)

    listing = agents.add_parser("list", help="every agent, role and whether disabled")
    listing.set_defaults(handler=_list)

    for action, help_text in (
        ("disable", "refuse the agent's sign-ins and end its sessions"),
        ("enable", "allow a disabled agent to sign in again"),
    ):
        q = agents.add_parser(action, help=help_text)
        q.add_argument("name")
        q.set_defaults(handler=_disable if action == "disable" else _enable)


def _password_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from the first line of standard input (scripts)",
    )


def _add(args: argparse.Namespace) -> int:
    ops.check_name(args.name)  # before asking for a password it could not be used with
    password = _read_password(args.password_stdin)
    agent = _run(lambda store: ops.add_agent(store, args.name, args.role, password, _now()))
    print(f"added {agent.name} ({ROLE_LABELS[agent.role]})")
    return 0


def _passwd(args: argparse.Namespace) -> int:
    _run(lambda store: ops.get_agent(store, args.name))  # unknown: say so before prompting
    password = _read_password(args.password_stdin)
    agent = _run(lambda store: ops.set_password(store, args.name, password, _now()))
    print(f"password of {agent.name} changed; its open sessions have ended")
    return 0


def _disable(args: argparse.Namespace) -> int:
    agent = _run(lambda store: ops.set_disabled(store, args.name, True, _now()))
    print(f"disabled {agent.name}; its open sessions have ended")
    return 0


def _enable(args: argparse.Namespace) -> int:
    agent = _run(lambda store: ops.set_disabled(store, args.name, False, _now()))
    print(f"enabled {agent.name}")
    return 0


def _list(args: argparse.Namespace) -> int:
    agents: list[AgentRecord] = _run(lambda store: store.all())
    if not agents:
        print("no agents yet (smsbot agents add NAME --role agent|supervisor)")
        return 0
    width = max(len("NAME"), *(len(a.name) for a in agents))
    print(f"{'NAME':<{width}}  {'ROLE':<10}  {'STATUS':<8}  UPDATED (UTC)")
    for a in agents:
        status = "disabled" if a.disabled else "active"
        updated = a.updated_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M")
        print(f"{a.name:<{width}}  {a.role:<10}  {status:<8}  {updated}")
    return 0


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        line = sys.stdin.readline()
        if not line:
            raise UsageError("--password-stdin: standard input is empty")
        return ops.check_password(line.removesuffix("\n").removesuffix("\r"))
    first = ops.check_password(getpass.getpass("password: "))
    if getpass.getpass("again: ") != first:
        raise UsageError("the two passwords differ: nothing changed")
    return first


def _run(action: Callable[[AgentStore], Awaitable[T]]) -> T:
    from bot.settings import load_settings

    settings = load_settings()
    if not settings.redis_url:
        raise UsageError(
            "SMSBOT_REDIS_URL is not set: agents live in the service's store, and the memory"
            " store exists only inside a running `smsbot serve` (in demo mode it makes its own"
            " demo agents)"
        )
    redis_url = settings.redis_url

    async def run() -> T:
        store = open_agent_store(redis_url)
        try:
            return await action(store)
        finally:
            await store.close()

    return asyncio.run(run())


def _now() -> datetime:
    return Clock().now()
