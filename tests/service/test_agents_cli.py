"""``smsbot agents``: on the configured Redis store, as an operator (and a script) runs it."""

from __future__ import annotations

import asyncio
import io
from typing import TYPE_CHECKING, Any

import pytest
import redis
from aiohttp.test_utils import TestClient, TestServer

from bot.app import create_app
from bot.cli import main
from bot.console.agents import password_matches
from bot.context import AGENTS
from bot.storage.agents import AgentRecord
from bot.storage.redis_agents import RedisAgentStore
from intents import Understander
from tests.service.apphelpers import settings

if TYPE_CHECKING:
    from conftest import RedisServer

GOOD = "correct horse battery"


@pytest.fixture
def redis_url(redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch) -> str:
    with redis.Redis.from_url(redis_server.url) as admin:
        admin.flushdb()
    monkeypatch.setenv("SMSBOT_REDIS_URL", redis_server.url)
    return redis_server.url


def run(argv: list[str], monkeypatch: pytest.MonkeyPatch, stdin: str | None = None) -> int:
    if stdin is not None:
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    return main(["agents", *argv])


def prompts(monkeypatch: pytest.MonkeyPatch, *answers: str) -> list[str]:
    """Answers the hidden prompts in order; the prompts shown."""
    asked: list[str] = []
    queue = list(answers)

    def fake(prompt: str = "") -> str:
        asked.append(prompt)
        return queue.pop(0)

    monkeypatch.setattr("getpass.getpass", fake)
    return asked


def stored(url: str, name: str) -> AgentRecord | None:
    async def get() -> AgentRecord | None:
        store = RedisAgentStore.from_url(url)
        try:
            return await store.get(name)
        finally:
            await store.close()

    return asyncio.run(get())


def test_add_with_prompts_then_list(
    redis_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    asked = prompts(monkeypatch, GOOD, GOOD)
    assert run(["add", "li.na", "--role", "agent"], monkeypatch) == 0
    assert asked == ["password: ", "again: "]
    assert "added li.na (客服 agent)" in capsys.readouterr().out
    agent = stored(redis_url, "li.na")
    assert agent is not None and agent.role == "agent" and not agent.disabled
    assert agent.password_hash.startswith("$argon2id$") and GOOD not in agent.password_hash
    assert asyncio.run(password_matches(agent, GOOD))

    assert (
        run(["add", "boss", "--role", "supervisor", "--password-stdin"], monkeypatch, GOOD + "\n")
        == 0
    )
    capsys.readouterr()
    assert run(["list"], monkeypatch) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["NAME", "ROLE", "STATUS", "UPDATED", "(UTC)"]
    assert [line.split()[:3] for line in lines[1:]] == [
        ["boss", "supervisor", "active"],
        ["li.na", "agent", "active"],
    ]


def test_passwd_disable_enable(
    redis_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["add", "li.na", "--role", "agent", "--password-stdin"], monkeypatch, GOOD) == 0
    first = stored(redis_url, "li.na")
    assert run(["passwd", "li.na", "--password-stdin"], monkeypatch, "another long one\n") == 0
    changed = stored(redis_url, "li.na")
    assert first is not None and changed is not None
    assert changed.generation == first.generation + 1  # ends the agent's sessions
    assert asyncio.run(password_matches(changed, "another long one"))
    assert not asyncio.run(password_matches(changed, GOOD))
    assert run(["disable", "li.na"], monkeypatch) == 0
    disabled = stored(redis_url, "li.na")
    assert disabled is not None and disabled.disabled
    capsys.readouterr()
    assert run(["list"], monkeypatch) == 0
    assert "disabled" in capsys.readouterr().out
    assert run(["enable", "li.na"], monkeypatch) == 0
    enabled = stored(redis_url, "li.na")
    assert enabled is not None and not enabled.disabled


@pytest.mark.parametrize(
    ("argv", "stdin", "code", "message"),
    [
        (["add", "Li Na", "--role", "agent", "--password-stdin"], GOOD, 1, "invalid agent name"),
        (["add", "li.na", "--role", "agent", "--password-stdin"], "short\n", 1, "too short"),
        (["add", "li.na", "--role", "agent", "--password-stdin"], "", 2, "standard input is empty"),
        (["add", "li.na", "--role", "agent", "--password-stdin"], f" {GOOD}\n", 1, "white space"),
        (["passwd", "nobody", "--password-stdin"], GOOD, 1, "no agent named 'nobody'"),
        (["disable", "nobody"], None, 1, "no agent named 'nobody'"),
        (["enable", "nobody"], None, 1, "no agent named 'nobody'"),
    ],
)
def test_refusals_say_why_and_exit_non_zero(
    redis_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    stdin: str | None,
    code: int,
    message: str,
) -> None:
    assert run(argv, monkeypatch, stdin) == code
    assert message in capsys.readouterr().err
    assert stored(redis_url, "li.na") is None


def test_a_taken_name_and_differing_prompts(
    redis_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["add", "li.na", "--role", "agent", "--password-stdin"], monkeypatch, GOOD) == 0
    assert run(["add", "li.na", "--role", "supervisor", "--password-stdin"], monkeypatch, GOOD) == 1
    assert "already exists" in capsys.readouterr().err
    before = stored(redis_url, "li.na")
    prompts(monkeypatch, "one long password", "another long one")
    assert run(["passwd", "li.na"], monkeypatch) == 2
    assert "differ" in capsys.readouterr().err
    assert stored(redis_url, "li.na") == before


def test_an_unknown_role_is_a_usage_error(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(SystemExit) as exit_:
        run(["add", "li.na", "--role", "admin"], monkeypatch)
    assert exit_.value.code == 2


def test_without_redis_the_commands_refuse(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("SMSBOT_REDIS_URL", raising=False)
    assert run(["list"], monkeypatch) == 2
    assert "SMSBOT_REDIS_URL is not set" in capsys.readouterr().err


def test_redis_down_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SMSBOT_REDIS_URL", "redis://127.0.0.1:1/0")
    assert run(["list"], monkeypatch) == 1
    err: Any = capsys.readouterr().err
    assert "unavailable" in err and "Traceback" not in err


async def test_an_agent_added_by_the_cli_signs_in_to_the_service_on_the_same_redis(
    redis_url: str, monkeypatch: pytest.MonkeyPatch, nlu: Understander
) -> None:
    argv = ["add", "li.na", "--role", "agent", "--password-stdin"]
    assert await asyncio.to_thread(run, argv, monkeypatch, GOOD) == 0
    app = create_app(settings(redis_url=redis_url), nlu=nlu)  # the agent store from settings
    async with TestClient(TestServer(app)) as c:
        assert isinstance(c.app[AGENTS], RedisAgentStore)
        r = await c.post("/api/console/login", json={"name": "li.na", "password": GOOD})
        assert r.status == 200
        assert await asyncio.to_thread(run, ["disable", "li.na"], monkeypatch) == 0
        assert (await c.get("/api/console/me")).status == 401  # the session ended at once
