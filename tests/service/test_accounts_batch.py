"""Accounts (issue 16, item 18): phones validated as mobiles and written E.164, one phone on
two accounts reported, an amount update quoted by the next message, a batch too large for one
request refused with a 413 that says how many rows fit."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bot.api import MAX_BATCH_ROWS
from bot.context import PIPELINE
from intents import Understander
from tests.service.apphelpers import AUTH, account, client, conversation, daytime_clock, post_twilio


@pytest.mark.parametrize(
    ("phone", "reason"),
    [
        ("12345", "not a valid phone number"),
        ("010-12345678", "a landline"),
        ("+86 10 1234 5678", "a landline"),
        ("4001234567", "not a mobile number"),
        ("+8614012345678", "not a valid phone number"),
        ("not-a-phone", "not a phone number"),
    ],
)
async def test_a_phone_that_is_no_mobile_is_refused_with_its_reason(
    nlu: Understander, phone: str, reason: str
) -> None:
    async with client(nlu) as c:
        r = await c.post(
            "/api/accounts", json={"accounts": [account(1, phone=phone)]}, headers=AUTH
        )
        body = await r.json()
        assert body["created"] == 0
        (error,) = body["errors"]
        assert error["error"].startswith("phone: ") and reason in error["error"], error


@pytest.mark.parametrize(
    "phone", ["13800000001", "+86 138-0000-0001", "008613800000001", "86 138 0000 0001"]
)
async def test_mobiles_are_written_e164(nlu: Understander, phone: str) -> None:
    async with client(nlu) as c:
        r = await c.post(
            "/api/accounts", json={"accounts": [account(1, phone=phone)]}, headers=AUTH
        )
        assert (await r.json())["created"] == 1
        assert (await conversation(c, "acc-0001"))["phone"] == "+8613800000001"


async def test_one_phone_on_two_accounts_is_reported(nlu: Understander) -> None:
    async with client(nlu) as c:
        same = account(1)["phone"]
        batch = [account(1), account(2, phone=same)]
        r = await c.post("/api/accounts", json={"accounts": batch, "start": False}, headers=AUTH)
        body = await r.json()
        assert body["created"] == 2 and body["errors"] == []
        (warning,) = body["warnings"]
        assert warning["index"] == 1 and warning["id"] == "acc-0002"
        assert "also account acc-0001's" in warning["warning"]
        assert same not in warning["warning"]  # masked, as in the logs
        later = [account(3, phone="138-0000-0001")]  # the same number, spelt otherwise
        r = await c.post("/api/accounts", json={"accounts": later, "start": False}, headers=AUTH)
        (warning,) = (await r.json())["warnings"]
        assert "also account acc-0002's" in warning["warning"]
        # Re-sending an account with its own number is no duplicate.
        r = await c.post("/api/accounts", json={"accounts": later, "start": False}, headers=AUTH)
        assert (await r.json())["warnings"] == []


async def test_an_amount_due_update_reaches_the_next_message(nlu: Understander) -> None:
    async with client(nlu, clock=daytime_clock()) as c:
        acc = account(1)
        await c.post("/api/accounts", json={"accounts": [acc]}, headers=AUTH)
        await c.app[PIPELINE].idle()
        updated = {**acc, "amount_due": "1500.00"}
        r = await c.post("/api/accounts", json={"accounts": [updated]}, headers=AUTH)
        assert (await r.json())["updated"] == 1
        await post_twilio(c, acc["phone"], "还差多少", "SM" + "7" * 32)
        await c.app[PIPELINE].idle()
        sent = await (await c.get("/api/sandbox/messages", headers=AUTH)).json()
        texts = [m["text"] for m in sent]
        assert len(texts) == 2 and "3200.00" in texts[0]
        assert "1500.00" in texts[1] and "3200.00" not in texts[1], texts[1]


async def test_too_many_rows_is_a_413_saying_how_many_fit(nlu: Understander) -> None:
    async with client(nlu) as c:
        rows: list[dict[str, Any]] = [{"id": "x"}] * (MAX_BATCH_ROWS + 1)
        r = await c.post("/api/accounts", json={"accounts": rows}, headers=AUTH)
        assert r.status == 413
        reason = (await r.json())["error"]
        assert f"{MAX_BATCH_ROWS + 1} rows" in reason
        assert f"at most {MAX_BATCH_ROWS} accounts per request" in reason


async def test_too_many_bytes_is_a_413_saying_how_many_rows_fit(nlu: Understander) -> None:
    async with client(nlu, max_batch_bytes=4096) as c:
        rows = [account(i) for i in range(1, 40)]
        r = await c.post("/api/accounts", json={"accounts": rows}, headers=AUTH)
        assert r.status == 413
        reason = (await r.json())["error"]
        assert "more than 4096 bytes" in reason and f"at most {MAX_BATCH_ROWS}" in reason


async def test_a_batch_larger_than_other_bodies_is_taken(nlu: Understander) -> None:
    async with client(nlu, max_body_bytes=4096) as c:
        rows = [account(i) for i in range(1, 200)]
        body = json.dumps({"accounts": rows, "start": False}).encode()
        assert len(body) > 4096
        r = await c.post("/api/accounts", data=body, headers=AUTH)
        assert r.status == 200 and (await r.json())["created"] == 199
        # Every other route keeps the small limit.
        r = await c.post("/api/payments", data=b"{" + b" " * 5000 + b"}", headers=AUTH)
        assert r.status == 413
