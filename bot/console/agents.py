"""What can be done to an agent (add, new password, disable, enable) and checking a password:
shared by the ``smsbot agents`` commands, the demo and the sign-in.

Passwords are hashed with argon2id (argon2-cffi's defaults, RFC 9106's second
recommendation: 64 MiB, 3 passes). A hash costs tens of milliseconds of CPU, so the service
runs it in a thread, at most two at a time: a burst of sign-ins cannot stall the event loop
the webhooks share, nor take 64 MiB per attempt without bound.
"""

from __future__ import annotations

import asyncio
import functools
import re
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from bot.storage.agents import NAME_PATTERN, AgentError, AgentRecord, AgentStore, Role

MIN_PASSWORD = 10
# argon2 reads the whole password; a megabyte posted at the sign-in form costs nothing here.
MAX_PASSWORD = 256
_NAME = re.compile(NAME_PATTERN)
_HASHER = PasswordHasher()
# Two threads of their own (not a semaphore: it would belong to one event loop, and the CLI
# and the tests run several); more requests wait in the executor's queue.
_HASHING = ThreadPoolExecutor(max_workers=2, thread_name_prefix="argon2")


@functools.cache
def _dummy_hash() -> str:
    """Checked when the name is unknown, so an unknown name takes as long as a wrong password
    and the timing does not tell which names exist."""
    return _HASHER.hash("no agent has this password: it only costs the same time")


def check_name(name: str) -> str:
    if not _NAME.match(name):
        raise AgentError(
            f"invalid agent name {name!r}: 2-32 characters, lower-case letters, digits,"
            " '.', '_' or '-', starting with a letter or digit"
        )
    return name


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise AgentError(f"password too short: at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise AgentError(f"password too long: at most {MAX_PASSWORD} characters")
    if password != password.strip():
        # Almost always a copied newline or space the agent will not type at the form.
        raise AgentError("password starts or ends with white space")
    return password


async def hash_password(password: str) -> str:
    check_password(password)
    return await asyncio.get_running_loop().run_in_executor(_HASHING, _HASHER.hash, password)


async def password_matches(agent: AgentRecord | None, password: str) -> bool:
    """Whether ``password`` is the agent's (False for no agent, after the same work)."""
    if len(password) > MAX_PASSWORD:
        return False
    stored = agent.password_hash if agent is not None else _dummy_hash()
    loop = asyncio.get_running_loop()
    try:
        await loop.run_in_executor(_HASHING, _HASHER.verify, stored, password)
    except (VerificationError, InvalidHashError):
        return False
    return agent is not None


async def add_agent(
    store: AgentStore, name: str, role: Role, password: str, now: datetime
) -> AgentRecord:
    record = AgentRecord(
        name=check_name(name),
        role=role,
        password_hash=await hash_password(password),
        created_at=now,
        updated_at=now,
    )
    if not await store.create(record):
        raise AgentError(f"agent {name!r} already exists (smsbot agents passwd {name} to reset)")
    return record


async def set_password(store: AgentStore, name: str, password: str, now: datetime) -> AgentRecord:
    password_hash = await hash_password(password)
    return await _change(store, name, now, password_hash=password_hash)


async def set_disabled(store: AgentStore, name: str, disabled: bool, now: datetime) -> AgentRecord:
    return await _change(store, name, now, disabled=disabled)


async def _change(store: AgentStore, name: str, now: datetime, **fields: object) -> AgentRecord:
    current = await get_agent(store, name)
    record = current.changed(now, **fields)
    if not await store.replace(record):
        raise AgentError(f"agent {name!r} was changed by someone else meanwhile: try again")
    return record


async def get_agent(store: AgentStore, name: str) -> AgentRecord:
    agent = await store.get(check_name(name))
    if agent is None:
        raise AgentError(f"no agent named {name!r} (smsbot agents list)")
    return agent
