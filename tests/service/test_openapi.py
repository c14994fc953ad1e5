"""The OpenAPI document describes every route (webhooks, /healthz, /readyz included) and every
response body, and each real response validates against the model it names (issue 16, item
18)."""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import urlencode

from aiohttp.test_utils import TestClient
from pydantic import BaseModel, TypeAdapter

from bot import schemas
from bot.api import AccountsBody, AgentBody, PaymentBody
from bot.campaigns import openapi as campaigns_openapi
from bot.console import openapi as console_api
from bot.console.agents import add_agent
from bot.context import AGENTS, PIPELINE
from bot.records import AccountRecord
from intents import Understander
from tests.service.apphelpers import (
    ALIYUN_TOKEN,
    AUTH,
    account,
    client,
    daytime_clock,
    generic_request,
    post_twilio,
    twilio_signature,
)

MODELS: dict[str, type[BaseModel]] = {
    m.__name__: m
    for m in [
        AccountsBody,
        AccountRecord,
        PaymentBody,
        AgentBody,
        schemas.Error,
        schemas.AccountsResult,
        schemas.Accepted,
        schemas.ConversationView,
        schemas.Health,
        schemas.Readiness,
        schemas.GenericAck,
        schemas.AliyunAck,
        schemas.TencentAck,
        schemas.ReloadReport,
        *schemas.LISTS.values(),
        *(m for m, _ in console_api.MODELS),
        *(m for m, _ in campaigns_openapi.MODELS),
    ]
}


def _routes(c: TestClient[Any, Any]) -> set[tuple[str, str]]:
    found = set()
    for route in c.app.router.routes():
        info = route.resource.get_info() if route.resource else {}
        path = info.get("path") or info.get("formatter")
        # Pages (the demo simulator, the console's HTML) are not the API.
        html = path and (path.startswith("/simulator") or path.startswith("/console"))
        if route.method != "HEAD" and path and not html:
            found.add((route.method.lower(), path))
    return found


def _model_name(schema: dict[str, Any]) -> str:
    return str(schema["$ref"]).rsplit("/", 1)[-1]


class Checker:
    def __init__(self, doc: dict[str, Any]) -> None:
        self.doc = doc
        self.checked: set[tuple[str, str, str]] = set()

    async def check(self, method: str, path: str, response: Any) -> None:
        """``response`` (aiohttp) against what the document says ``method path`` answers."""
        status = str(response.status)
        documented = self.doc["paths"][path][method]["responses"]
        assert status in documented, (method, path, status, await response.text())
        content = documented[status].get("content")
        self.checked.add((method, path, status))
        if content is None:
            assert await response.read() == b""
            return
        (media,) = content
        assert response.content_type == media, (path, response.content_type)
        if media != "application/json":
            return
        body = await response.json()
        schema = content[media]["schema"]
        if "$ref" in schema:
            MODELS[_model_name(schema)].model_validate(body)
        elif schema.get("type") == "array":
            item = MODELS[_model_name(schema["items"])]
            assert body, f"{path}: check a list with something in it"
            TypeAdapter(list[item]).validate_python(body)  # type: ignore[valid-type]
        else:
            assert isinstance(body, dict)


async def test_every_route_is_documented_and_every_response_has_a_body_schema(
    nlu: Understander,
) -> None:
    async with client(nlu) as c:
        doc = await (await c.get("/api/openapi.json")).json()
        documented = {(m, p) for p, ops in doc["paths"].items() for m in ops}
        assert documented == _routes(c)
        for path, ops in doc["paths"].items():
            for method, op in ops.items():
                assert op.get("summary"), (method, path)
                for status, response in op["responses"].items():
                    if status != "204":
                        assert response.get("content"), (method, path, status)
        schemas_ = doc["components"]["schemas"]
        refs = {r.rsplit("/", 1)[-1] for r in _all_refs(doc["paths"])}
        assert refs <= set(schemas_), refs - set(schemas_)
        assert refs - {"TwilioInbound", "TwilioStatus", "GenericInbound"} <= set(MODELS) | {
            "AliyunInbound",
            "TencentInbound",
        }


async def _check_console(ck: Checker, c: TestClient[Any, Any]) -> None:
    """The console's JSON API, signed in as an agent and as a supervisor."""
    agents = c.app[AGENTS]
    for name, role in (("li.na", "agent"), ("boss", "supervisor")):
        await add_agent(agents, name, role, "correct horse battery", daytime_clock().now())  # type: ignore[arg-type]
    login = "/api/console/login"
    await ck.check("get", "/api/console/me", await c.get("/api/console/me"))
    await ck.check("post", login, await c.post(login, json={"name": "li.na"}))
    await ck.check("post", login, await c.post(login, json={"name": "li.na", "password": "no"}))
    right = {"name": "li.na", "password": "correct horse battery"}
    r = await c.post(login, json=right)
    await ck.check("post", login, r)
    token = (await r.json())["csrf_token"]
    await ck.check("get", "/api/console/me", await c.get("/api/console/me"))
    await ck.check("get", "/api/console/agents", await c.get("/api/console/agents"))
    await _check_dashboard(ck, c)  # an agent: 403
    logout = "/api/console/logout"
    await ck.check("post", logout, await c.post(logout))
    await ck.check("post", logout, await c.post(logout, headers={"X-CSRF-Token": token}))
    await ck.check("get", "/api/console/agents", await c.get("/api/console/agents"))
    await _check_dashboard(ck, c)  # nobody: 401
    await ck.check("post", login, await c.post(login, json={**right, "name": "boss"}))
    await ck.check("get", "/api/console/agents", await c.get("/api/console/agents"))
    await _check_cases(ck, c, (await (await c.get("/api/console/me")).json())["csrf_token"])
    await _check_dashboard(ck, c)  # a supervisor: the figures, and a bad date refused
    for path in ("/api/console/dashboard", "/api/console/dashboard.csv"):
        await ck.check("get", path, await c.get(path + "?from=2026-02-30"))
    for _ in range(5):  # the name's burst is 5
        r = await c.post(login, json={**right, "password": "wrong"})
    await ck.check("post", login, r)


async def _check_cases(ck: Checker, c: TestClient[Any, Any], token: str) -> None:
    """The case queue's routes, as the supervisor signed in; account 1 disputes first."""
    await post_twilio(c, account(1)["phone"], "这笔钱我根本没借过，你们搞错了", "SM" + "7" * 32)
    await c.app[PIPELINE].idle()
    w = {"X-CSRF-Token": token}
    cases = "/api/console/cases"
    r = await c.get(cases)
    await ck.check("get", cases, r)
    case_id = (await r.json())["cases"][0]["case"]["id"]
    await ck.check("get", cases, await c.get(cases + "?limit=0"))
    one, base = "/api/console/cases/{account_id}", "/api/console/cases/acc-0001"
    await ck.check("get", one, await c.get(base))
    await ck.check("get", one, await c.get("/api/console/cases/nobody"))
    await ck.check("post", one + "/reveal", await c.post(base + "/reveal", headers=w))
    await ck.check("get", one + "/templates", await c.get(base + "/templates"))
    body = {"case_id": case_id}
    await ck.check("post", one + "/claim", await c.post(base + "/claim", json=body, headers=w))
    await ck.check("post", one + "/claim", await c.post(base + "/claim", json={}, headers=w))
    await ck.check("post", one + "/claim", await c.post(base + "/claim", json=body))
    text = "【XX金融】您好，我是XX消费金融客服专员，正在核实，如有疑问请致电95XXX。"
    msg = {**body, "text": text}
    await ck.check("post", one + "/messages", await c.post(base + "/messages", json=msg, headers=w))
    note = {**body, "text": "已联系"}
    await ck.check("post", one + "/notes", await c.post(base + "/notes", json=note, headers=w))
    promise = {**body, "date": "2026-11-28"}
    r = await c.post(base + "/promise", json=promise, headers=w)
    await ck.check("post", one + "/promise", r)
    plan = {**body, "instalments": [{"due": "2026-12-20", "amount": "1600"}]}
    await ck.check("post", one + "/plan", await c.post(base + "/plan", json=plan, headers=w))
    hold = {**body, "hold": "hardship", "on": True}
    await ck.check("post", one + "/hold", await c.post(base + "/hold", json=hold, headers=w))
    again = {**body, "to": "li.na"}
    r = await c.post(base + "/reassign", json=again, headers=w)
    await ck.check("post", one + "/reassign", r)
    await ck.check("post", one + "/release", await c.post(base + "/release", json=body, headers=w))
    r = await c.post(base + "/resolve", json={**body, "how": "close"}, headers=w)
    await ck.check("post", one + "/resolve", r)
    await c.app[PIPELINE].idle()
    r = await c.post(base + "/resolve", json={**body, "how": "close"}, headers=w)
    await ck.check("post", one + "/resolve", r)  # 404: closed already
    unmatched = "/api/console/unmatched"
    r = await c.get(unmatched)
    await ck.check("get", unmatched, r)
    m = (await r.json())["messages"][0]
    path = unmatched + "/{provider}/{msg_id}"
    url = f"{unmatched}/{m['provider']}/{m['msg_id']}"
    link = {"account_id": "nobody"}
    await ck.check("post", path + "/link", await c.post(url + "/link", json=link, headers=w))
    await ck.check("post", path + "/dismiss", await c.post(url + "/dismiss", headers=w))
    await ck.check("post", path + "/dismiss", await c.post(url + "/dismiss", headers=w))


async def _check_dashboard(ck: Checker, c: TestClient[Any, Any]) -> None:
    for path in ("/api/console/dashboard", "/api/console/dashboard.csv"):
        await ck.check("get", path, await c.get(path))


def _all_refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [v for k, v in node.items() if k == "$ref"] + [
            r for v in node.values() for r in _all_refs(v)
        ]
    if isinstance(node, list):
        return [r for v in node for r in _all_refs(v)]
    return []


async def test_real_responses_are_what_the_document_says(nlu: Understander) -> None:
    async with client(nlu, clock=daytime_clock()) as c:
        doc = await (await c.get("/api/openapi.json")).json()
        ck = Checker(doc)
        rows = [account(1), account(2, phone="12345"), account(3, phone=account(1)["phone"])]
        await ck.check(
            "post",
            "/api/accounts",
            await c.post("/api/accounts", json={"accounts": rows}, headers=AUTH),
        )
        await ck.check(
            "post", "/api/accounts", await c.post("/api/accounts", data=b"{", headers=AUTH)
        )
        await ck.check("post", "/api/accounts", await c.post("/api/accounts", json={}))
        reload = await c.post("/api/admin/reload", headers=AUTH)
        await ck.check("post", "/api/admin/reload", reload)
        phone = account(3)["phone"]
        await ck.check(
            "post", "/webhooks/twilio", await post_twilio(c, phone, "明天还500", "SM" + "1" * 32)
        )
        body, headers = generic_request("g-1", phone, "好的")
        await ck.check(
            "post",
            "/webhooks/generic",
            await c.post("/webhooks/generic", data=body, headers=headers),
        )
        body, headers = generic_request("g-2", "+8613911112222", "你们是谁")  # nobody's number
        await ck.check(
            "post",
            "/webhooks/generic",
            await c.post("/webhooks/generic", data=body, headers=headers),
        )
        await ck.check("post", "/webhooks/generic", await c.post("/webhooks/generic", data=body))
        aliyun = [{"phone_number": phone[3:], "content": "好的", "sequence_id": 7}]
        url = f"/webhooks/aliyun/{ALIYUN_TOKEN}"
        await ck.check("post", "/webhooks/aliyun/{token}", await c.post(url, json=aliyun))
        await ck.check("get", "/webhooks/aliyun/{token}", await c.get(url))
        await ck.check("get", "/webhooks/aliyun/{token}", await c.get("/webhooks/aliyun/wrong"))
        tencent = {
            "mobile": phone[3:],
            "nationcode": "86",
            "text": "好的",
            "time": int(time.time()),
        }
        await ck.check("post", "/webhooks/tencent", await c.post("/webhooks/tencent", json=tencent))
        await ck.check(
            "post",
            "/webhooks/aliyun/report/{token}",
            await c.post(f"/webhooks/aliyun/report/{ALIYUN_TOKEN}", json=[]),
        )
        await ck.check(
            "post", "/webhooks/tencent/status", await c.post("/webhooks/tencent/status", json=[])
        )
        form = {"MessageSid": "SM" + "9" * 32, "MessageStatus": "delivered", "To": phone}
        status_url = "/webhooks/twilio/status?ref=no-such-message"
        sig = twilio_signature("https://sms.example.cn" + status_url, form)
        r = await c.post(
            status_url,
            data=urlencode(form),
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "X-Twilio-Signature": sig,
            },
        )
        await ck.check("post", "/webhooks/twilio/status", r)
        await c.app[PIPELINE].idle()
        pay = {
            "account_id": "acc-0001",
            "amount": "100.00",
            "paid_at": "2026-11-25T10:00:00+08:00",
            "reference": "p-1",
        }
        await ck.check(
            "post", "/api/payments", await c.post("/api/payments", json=pay, headers=AUTH)
        )
        await ck.check(
            "post",
            "/api/payments",
            await c.post("/api/payments", json={**pay, "account_id": "nobody"}, headers=AUTH),
        )
        await ck.check(
            "post",
            "/api/conversations/{account_id}/agent",
            await c.post(
                "/api/conversations/acc-0003/agent", json={"action": "returned"}, headers=AUTH
            ),
        )
        await c.app[PIPELINE].idle()
        for account_id in ("acc-0001", "acc-0003", "nobody"):
            r = await c.get(f"/api/conversations/{account_id}", headers=AUTH)
            await ck.check("get", "/api/conversations/{account_id}", r)
        for path in schemas.LISTS:
            await ck.check("get", path, await c.get(path, headers=AUTH))
            await ck.check("get", path, await c.get(path + "?limit=x", headers=AUTH))
        await _check_console(ck, c)
        await ck.check("get", "/healthz", await c.get("/healthz"))
        await ck.check("get", "/readyz", await c.get("/readyz"))
        await ck.check("get", "/metrics", await c.get("/metrics"))  # off: no token set
        await ck.check("get", "/api/openapi.json", await c.get("/api/openapi.json"))
        json.dumps(doc)
        assert len(ck.checked) >= 25
