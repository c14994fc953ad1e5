"""Journeys through the service with each real carrier adapter pointed at the fake carrier:
what the carrier is asked for a reminder, what ``GET /api/conversations/{id}`` then shows, and
how the carrier's own receipts (Alibaba Cloud's and Tencent Cloud's pushed arrays, Twilio's
signed status callbacks) move the message on, while refused, repeated and stray reports change
nothing. The send state machine itself is covered by ``test_outbound.py``.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Literal

import pytest

from bot.clock import Clock
from bot.context import FLOWS, PIPELINE, SETTINGS
from bot.storage.base import Store
from intents import Understander
from tests.outbound.fakecarrier import TWILIO_TOKEN, FakeCarrier, Sent, flows_with_codes
from tests.service.apphelpers import (
    ALIYUN_TOKEN,
    AUTH,
    account,
    conversation,
    daytime_clock,
    twilio_signature,
)
from tests.service.carrierhelpers import (
    FROM,
    SIGN,
    TENCENT_TOKEN,
    aliyun_settings,
    fake_on,
    only_message,
    running,
    sends,
    service,
    start,
    tencent_settings,
    twilio_settings,
)

pytestmark = pytest.mark.timeout(60)

JSON = {"Content-Type": "application/json"}
RECEIPT_ROUTE = {"aliyun": "/webhooks/aliyun/report", "tencent": "/webhooks/tencent/status"}
TOKEN = {"aliyun": ALIYUN_TOKEN, "tencent": TENCENT_TOKEN}


@pytest.fixture
def clock() -> Clock:
    return daytime_clock()  # 10:00 in Shanghai: the gate sends at once


@pytest.fixture
async def fake(clock: Clock) -> AsyncIterator[FakeCarrier]:
    async with running(fake_on(clock)) as carrier:
        yield carrier


def template_variables(text: str) -> list[str]:
    """The values a template sends, in the order they appear (settings are fixed text)."""
    fixed = {"signature", "creditor", "hotline", "app_link"}
    return [v for v in re.findall(r"(?<!\{)\{(\w+)\}", text) if v not in fixed]


# --- Alibaba Cloud and Tencent Cloud: approved templates, pushed receipt arrays ---------------


def bad_receipt(carrier: str) -> dict[str, Any]:
    """An item its parser must refuse: Aliyun's without out_id or biz_id, Tencent's without sid."""
    if carrier == "aliyun":
        return {"success": True, "err_code": "DELIVERED", "phone_number": "13800000001"}
    return {"report_status": "SUCCESS", "mobile": "13800000001", "nationcode": "86"}


@pytest.mark.parametrize("carrier", ["aliyun", "tencent"])
async def test_a_template_carrier_sends_the_approved_template_and_its_receipts_move_it_on(
    nlu: Understander,
    store: Store,
    clock: Clock,
    fake: FakeCarrier,
    tmp_path: Path,
    carrier: Literal["aliyun", "tencent"],
) -> None:
    build = aliyun_settings if carrier == "aliyun" else tencent_settings
    async with service(nlu, store, clock, **build(fake, flows_with_codes(tmp_path))) as c:
        await start(c, account(1), account(2))
        first = await only_message(c, "acc-0001")
        second = await only_message(c, "acc-0002")
        tpl = c.app[FLOWS].get("collections").flow.templates[first["template"]]

        # One request per message, naming our id, the approved template and the signature.
        assert sends(fake) == ["SendSms", "SendSms"]
        for m in (first, second):
            (got,) = fake.by_id(m["id"])
            assert got.carrier == carrier and got.template == tpl.codes[carrier]
            assert got.sign == SIGN and got.text is None
            assert m["state"] == "sent" and m["carrier"] == carrier
            assert m["provider_id"] == got.provider_id  # Aliyun's BizId, Tencent's SerialNo
        (got,) = fake.by_id(first["id"])
        assert got.phone == account(1)["phone"]
        variables = template_variables(tpl.text)
        assert variables == ["name", "last4", "amount_due", "days_overdue"]
        # days_overdue is counted to today (due 11-24, today 11-25), not the ledger's figure.
        values = dict(zip(variables, ["张*", "0001", "3200.00", "1"], strict=True))
        if carrier == "aliyun":  # TemplateParam: a JSON object of the template's values
            assert got.params == values
        else:  # TemplateParamSet: the values in the order they appear in the template
            assert got.params == [values[v] for v in variables]
        assert all(value in first["text"] for value in values.values())

        route = RECEIPT_ROUTE[carrier]
        good = f"{route}/{TOKEN[carrier]}"
        fake.deliver([got])
        delivered = fake.receipt_body(carrier, [got])

        # Refused pushes change nothing: wrong or missing token, one malformed item.
        for path in (f"{route}/not-the-token", route):
            r = await c.post(path, data=delivered, headers=JSON)
            assert r.status == 403, (path, await r.text())
        mixed = [*json.loads(delivered), bad_receipt(carrier)]
        r = await c.post(good, data=json.dumps(mixed), headers=JSON)
        assert r.status == 400
        assert "item 1" in (await r.json())["error"]
        assert await only_message(c, "acc-0001") == first
        assert await (await c.get("/api/receipts/unmatched", headers=AUTH)).json() == []

        # The provider's own push: delivered; the same push again changes nothing.
        url = str(c.make_url(good))
        assert await fake.push_receipts(carrier, [got], url=url) == [200]
        after = await only_message(c, "acc-0001")
        assert after["state"] == "delivered" and after["provider_id"] == got.provider_id
        assert await fake.push_receipts(carrier, [got], url=url) == [200]
        assert await only_message(c, "acc-0001") == after
        transcript = (await conversation(c, "acc-0001"))["transcript"]
        assert [e["kind"] for e in transcript].count("delivered") == 1

        # A failed report: undelivered, and the flow hands the conversation to a person.
        (lost,) = fake.by_id(second["id"])
        fake.deliver([lost], ok=False)
        assert await fake.push_receipts(carrier, [lost], url=url) == [200]
        await c.app[PIPELINE].idle()
        conv = await conversation(c, "acc-0002")
        (m,) = conv["messages"]
        assert m["state"] == "undelivered" and m["code"] == "UNDELIV"
        assert conv["state"] == "with_agent"
        handoffs = [e["detail"] for e in conv["transcript"] if e["kind"] == "handoff"]
        assert [h["reason"] for h in handoffs] == ["delivery_failed"]

        # A report for no message of ours: answered, kept for people, nothing else moved.
        stray = Sent(
            carrier=carrier,
            message_id="no-such-message",
            phone="+8613999999999",
            text=None,
            template=tpl.codes[carrier],
            params=None,
            provider_id="2640:0000000000000009999" if carrier == "tencent" else "999999^0",
            at=clock.now(),
            status="delivered",
        )
        assert await fake.push_receipts(carrier, [stray], url=url) == [200]
        r = await c.get("/api/receipts/unmatched", headers=AUTH)
        (kept,) = await r.json()
        assert kept["carrier"] == carrier and kept["provider_id"] == stray.provider_id
        assert kept["message_id"] == "no-such-message" and kept["state"] == "delivered"
        assert await only_message(c, "acc-0001") == after
        assert sends(fake) == ["SendSms", "SendSms"]  # a receipt never sends anything


# --- Twilio: our text, a StatusCallback per message, signed callbacks ------------------------


async def test_twilio_sends_our_text_and_its_signed_status_callbacks_move_it_on(
    nlu: Understander, store: Store, clock: Clock, fake: FakeCarrier
) -> None:
    async with service(nlu, store, clock, **twilio_settings(fake)) as c:
        await start(c, account(1), account(2))
        first = await only_message(c, "acc-0001")
        second = await only_message(c, "acc-0002")
        public = c.app[SETTINGS].base_url
        assert public == str(c.make_url("")).rstrip("/")  # Twilio can reach what it is given
        assert sends(fake) == ["create", "create"]
        for m, row in ((first, account(1)), (second, account(2))):
            (got,) = fake.by_id(m["id"])
            assert (got.phone, got.sign, got.text) == (row["phone"], FROM, m["text"])
            assert got.callback == f"{public}/webhooks/twilio/status?ref={m['id']}"
            assert m["state"] == "sent" and m["carrier"] == "twilio"
            assert m["provider_id"] == got.provider_id  # the MessageSid

        (got,) = fake.by_id(first["id"])
        fake.deliver([got])
        form = fake.twilio_callback_form(got)
        path = f"/webhooks/twilio/status?ref={first['id']}"
        good = twilio_signature(public + path, form, token=TWILIO_TOKEN)
        # A bad signature, and a good one over another ref (the ref is signed): refused.
        for where, signature in ((path, "bm90IGEgc2lnbmF0dXJl"), (path + "x", good)):
            r = await c.post(where, data=form, headers={"X-Twilio-Signature": signature})
            assert r.status == 403, await r.text()
        assert await only_message(c, "acc-0001") == first

        assert await fake.push_receipts("twilio", [got]) == [204]  # to its StatusCallback
        after = await only_message(c, "acc-0001")
        assert after["state"] == "delivered" and after["provider_id"] == got.provider_id

        (lost,) = fake.by_id(second["id"])
        fake.deliver([lost], ok=False)
        assert fake.twilio_callback_form(lost)["ErrorCode"] == "30003"
        assert await fake.push_receipts("twilio", [lost]) == [204]
        await c.app[PIPELINE].idle()
        conv = await conversation(c, "acc-0002")
        (m,) = conv["messages"]
        assert (m["state"], m["code"]) == ("undelivered", "30003")
        assert conv["state"] == "with_agent"
        assert await only_message(c, "acc-0001") == after
        assert sends(fake) == ["create", "create"]
