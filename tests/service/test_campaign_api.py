"""The campaigns' API: NDJSON import, list, status, pause/resume/cancel, refusals (4xx with
a reason, never 500), each answer checked against the OpenAPI document."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp import FormData

from bot.storage.base import Store
from intents import Understander
from tests.service.apphelpers import AUTH, account
from tests.service.campaignhelpers import service
from tests.service.test_openapi import Checker

pytestmark = pytest.mark.timeout(60)
DAY = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)
NDJSON = {**AUTH, "Content-Type": "application/x-ndjson"}


def ndjson(head: dict[str, Any], *lines: Any) -> bytes:
    out = [json.dumps(head)] + [x if isinstance(x, str) else json.dumps(x) for x in lines]
    return "\n".join(out).encode()


async def test_the_campaign_api(nlu: Understander, store: Store) -> None:
    async with service(nlu, store, DAY) as s:
        c = s.c
        ck = Checker(await (await c.get("/api/openapi.json")).json())
        path, one = "/api/campaigns", "/api/campaigns/{campaign_id}"
        head = {"name": "api", "flow": "collections", "rate": 5}
        body = ndjson(head, account(1), account(2), "{not json", account(3, phone="123"), [1])
        r = await c.post(path, data=body, headers=NDJSON)
        await ck.check("post", path, r)
        report = await r.json()
        assert (report["imported"], report["added"], report["rejected"]) == (2, 2, 3)
        assert report["errors"][0] == "row 4: not a JSON object"
        assert report["errors"][1].startswith("row 5: phone: ")
        campaign_id = report["campaign_id"]
        again = await c.post(path, data=ndjson(head, account(1)), headers=NDJSON)
        assert (await again.json())["added"] == 0

        r = await c.get(path, headers=AUTH)
        await ck.check("get", path, r)
        assert [k["name"] for k in (await r.json())["campaigns"]] == ["api"]
        await s.release()
        r = await c.get(f"{path}/api", headers=AUTH)
        await ck.check("get", one, r)
        assert (await r.json())["released"] == 2
        assert (await r.json())["campaign"]["state"] == "done"
        later = {"name": "later", "start_at": "2026-11-26T10:00:00+08:00"}
        r = await c.post(path, data=ndjson(later, account(4)), headers=NDJSON)
        later_id = (await r.json())["campaign_id"]
        states = []
        for action in ("pause", "resume", "cancel"):
            r = await c.post(f"{path}/{later_id}/{action}", headers=AUTH)
            await ck.check("post", f"{one}/{action}", r)
            states.append((await r.json())["state"])
        assert states == ["paused", "scheduled", "cancelled"]
        r = await c.post(f"{path}/{campaign_id}/pause", headers=AUTH)
        await ck.check("post", f"{one}/resume", r)
        assert r.status == 409

        refusals = [
            (await c.post(path, data=b'{"name": ""}\n', headers=NDJSON), 400, "first line"),
            (await c.post(path, data=b"nope", headers=NDJSON), 400, "first line"),
            (await c.post(path, data=ndjson({"name": "x", "flow": "nope"}), headers=NDJSON),
             400, "no flow named"),
            (await c.post(path, data=ndjson({"name": "x", "rate": 0}), headers=NDJSON),
             400, "rate"),
            (await c.post(path, data=ndjson({"name": "x", "rate": 10_001}), headers=NDJSON),
             400, "rate"),
            (await c.post(path, data=ndjson(head)), 401, "API key"),
            (await c.get(f"{path}/nope", headers=AUTH), 404, "no campaign"),
            (await c.post(f"{path}/nope/pause", headers=AUTH), 404, "no campaign"),
        ]  # fmt: skip
        for response, status, reason in refusals:
            assert response.status == status, await response.text()
            assert reason in (await response.json())["error"]
        form = FormData()
        form.add_field("name", "upload")
        r = await c.post(path, data=form, headers=AUTH)
        await ck.check("post", path, r)
        assert r.status == 400 and "file" in (await r.json())["error"]
        # A lender's file as Chinese Excel saves it: GBK, Chinese headers, a bad row.
        csv = "账户号,姓名,手机号,应还金额,逾期天数,到期日\r\n"
        csv += "up-0001,李四,13800009001,1500,3,2026-11-30\r\n"
        csv += "up-0002,王五,12345,800,2,2026-11-30\r\n"
        csv += "up-0003,赵六,13800009003,2600.5,9,2026/11/20\r\n"
        form = FormData()
        form.add_field("name", "upload")
        form.add_field("file", csv.encode("gbk"), filename="十二月.csv")
        r = await c.post(path, data=form, headers=AUTH)
        await ck.check("post", path, r)
        report = await r.json()
        assert r.status == 200 and (report["imported"], report["rejected"]) == (2, 1), report
        assert report["errors"][0].startswith("row 3: phone: ")
        form = FormData()
        form.add_field("name", "junk")
        form.add_field("file", b"\x00\x01junk", filename="x.xlsx")
        r = await c.post(path, data=form, headers=AUTH)
        assert r.status == 400 and "file" in (await r.json())["error"]
