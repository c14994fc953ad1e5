"""Start-up checks of the send side and malformed input at the receipt endpoints."""

from __future__ import annotations

from typing import Any

import pytest

from bot.outbound import setup
from bot.settings import Settings
from common.errors import ConfigError
from dialogs.registry import Registry
from intents import Understander
from tests.service.apphelpers import AUTH, client

REGISTRY = Registry.load()


def twilio(**extra: Any) -> Settings:
    fields: dict[str, Any] = {
        "provider": "twilio",
        "twilio_account_sid": "AC" + "0" * 32,
        "twilio_auth_token": "token",
        "twilio_from": "+15550000000",
        "public_url": "https://bot.example.com",
        **extra,
    }
    return Settings(**fields)


def problems(settings: Settings) -> str:
    with pytest.raises(ConfigError) as caught:
        setup.check(settings, REGISTRY)
    return str(caught.value)


def test_a_good_set_up_passes() -> None:
    setup.check(twilio(), REGISTRY)


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        ({"twilio_api_url": "api.twilio.com"}, "SMSBOT_TWILIO_API_URL must be an http"),
        ({"public_url": None}, "needs SMSBOT_PUBLIC_URL"),
        ({"twilio_from": None}, "SMSBOT_TWILIO_FROM or"),
        ({"twilio_auth_token": None}, "SMSBOT_TWILIO_AUTH_TOKEN is not set"),
    ],
)
def test_a_bad_set_up_is_refused_naming_the_setting(extra: dict[str, Any], named: str) -> None:
    assert named in problems(twilio(**extra))


def test_receipts_nobody_may_post_are_warned_about() -> None:
    settings = Settings(provider="sandbox", provider_by_pack={"cn": "aliyun"})
    assert any("SMSBOT_ALIYUN_PATH_TOKEN" in w for w in setup.warnings(settings))
    guarded = Settings(provider="aliyun", aliyun_allowed_ips=["10.0.0.0/8"])
    assert setup.warnings(guarded) == []


@pytest.mark.parametrize(
    ("path", "body", "content_type"),
    [
        # Lone surrogates in ids: valid JSON, but no key or log line can hold them.
        (
            "/webhooks/tencent/status/tok",
            b'[{"report_status":"SUCCESS","sid":"\\ud800abc","ext":"\\udfff",'
            b'"mobile":"13979840002","user_receive_time":"2026-12-05 04:40:00"}]',
            "application/json",
        ),
        (
            "/webhooks/aliyun/report/tok",
            b'[{"success":true,"biz_id":"\\ud800abc","out_id":"x","phone_number":"13800138000",'
            b'"report_time":"2026-12-05 04:40:00","err_code":"DELIVERED"}]',
            "application/json",
        ),
        # Not UTF-8, before any signature is looked at.
        (
            "/webhooks/twilio/status",
            b"MessageSid=\xff\xfe&MessageStatus=delivered",
            "application/x-www-form-urlencoded",
        ),
        ("/webhooks/twilio", b"Body=\xff\xfe&From=%2B1", "application/x-www-form-urlencoded"),
    ],
)
async def test_malformed_receipts_get_400_and_change_nothing(
    nlu: Understander, path: str, body: bytes, content_type: str
) -> None:
    async with client(
        nlu, aliyun_path_token="tok", tencent_path_token="tok", twilio_auth_token="t"
    ) as c:
        r = await c.post(path, data=body, headers={"Content-Type": content_type})
        assert r.status == 400, await r.text()
        assert (await r.json())["error"]
        unmatched = await c.get("/api/receipts/unmatched", headers=AUTH)
        assert await unmatched.json() == []
