"""Demo mode never touches real data (issue 16, item 14): no shared store, loopback only,
unless forced; and even forced, the simulator acts on the demo borrowers only."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.cli import main
from bot.errors import ConfigError
from bot.settings import load_settings
from intents import Understander
from tests.service.apphelpers import AUTH, account, client


@pytest.fixture(autouse=True)
def _no_config_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SMSBOT_CONFIG", str(tmp_path / "absent.yaml"))
    monkeypatch.delenv("SMSBOT_REDIS_URL", raising=False)
    monkeypatch.delenv("SMSBOT_HOST", raising=False)


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"redis_url": "redis://10.0.0.5:6379/0"}, "refuses a shared store"),
        ({"host": "0.0.0.0"}, "loopback only"),
        ({"host": "::"}, "loopback only"),
        ({"host": "sms.example.cn"}, "loopback only"),
    ],
)
def test_demo_refuses_a_shared_store_or_a_reachable_host(
    overrides: dict[str, str], reason: str
) -> None:
    with pytest.raises(ConfigError, match=reason) as refused:
        load_settings(demo=True, **overrides)
    assert "--demo-force" in str(refused.value)
    forced = load_settings(demo=True, demo_force=True, **overrides)
    assert forced.demo and forced.demo_force
    assert not load_settings(**overrides).demo  # without --demo nothing changes


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "localhost"])
def test_demo_on_loopback_with_the_memory_store_needs_no_force(host: str) -> None:
    assert load_settings(demo=True, host=host).demo


def test_serve_demo_on_a_shared_redis_exits_with_the_reason(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SMSBOT_REDIS_URL", "redis://127.0.0.1:1/0")
    assert main(["serve", "--demo"]) == 1  # refused before anything starts or connects
    err = capsys.readouterr().err
    assert "SMSBOT_REDIS_URL" in err and "--demo-force" in err


async def test_the_simulator_acts_on_demo_accounts_only(nlu: Understander) -> None:
    async with client(nlu, demo=True, demo_force=True) as c:
        r = await c.post("/api/accounts", json={"accounts": [account(1)]}, headers=AUTH)
        assert r.status == 200, await r.text()
        real = "acc-0001"
        r = await c.get(f"/simulator/api/state/{real}")
        assert r.status == 404 and "demo" in (await r.json())["error"]
        r = await c.post("/simulator/api/reply", json={"account_id": real, "text": "退订"})
        assert r.status == 404
        r = await c.post("/simulator/api/payment", json={"account_id": real, "amount": "1.00"})
        assert r.status == 404
        listed = await (await c.get("/simulator/api/accounts")).json()
        assert real not in {a["id"] for a in listed["accounts"]}
        conv = await (await c.get(f"/api/conversations/{real}", headers=AUTH)).json()
        assert not [e for e in conv["transcript"] if e["kind"] in {"inbound", "payment"}]
        r = await c.get("/simulator/api/state/demo-0001")
        assert r.status == 200


def test_demo_days_overdue_count_in_beijing_time() -> None:
    """A tester's trial: started at 02:52 Beijing (the day before in UTC), the simulator listed
    a borrower 5 days overdue whose reminder said 已逾期6天."""
    from datetime import UTC, date, datetime

    from aiohttp import web

    from bot.clock import Clock
    from bot.context import CLOCK
    from bot.demo import demo_accounts

    app = web.Application()
    app[CLOCK] = Clock(datetime(2026, 12, 5, 18, 52, tzinfo=UTC) - datetime.now(UTC))  # 02:52
    first = demo_accounts(app)[0]
    assert first.days_overdue == 5
    assert first.due_date == date(2026, 12, 1)  # Beijing's 12-06 less 5 days (UTC: 12-05)
