"""The carriers a service uses, built from its settings; a misconfiguration is refused at start.

A carrier is "in use" when it is ``SMSBOT_PROVIDER`` or named in ``SMSBOT_PROVIDER_BY_PACK``.
Each one in use must have its credentials (environment only) and, for the template carriers
(Alibaba Cloud, Tencent Cloud, which send approved template codes rather than free text),
every template of every loaded flow must carry its code: otherwise the service would start
and fail each first reminder at send time.
"""

from __future__ import annotations

from collections.abc import Mapping

import aiohttp

from bot.clock import Clock
from bot.compliance.gate import Gate
from bot.outbound.carriers.base import Carrier
from bot.outbound.carriers.sandbox import SandboxCarrier
from bot.outbound.dispatch import Dispatcher, Routing
from bot.outbound.sender import Sender, SendPolicy
from bot.settings import Settings
from bot.storage.base import Store
from common.errors import ConfigError, Problem
from dialogs.flow import Flow
from dialogs.registry import Registry

TEMPLATE_CARRIERS = frozenset({"aliyun", "tencent"})
# The settings each carrier cannot work without (environment variable names are SMSBOT_…).
_REQUIRED: Mapping[str, tuple[str, ...]] = {
    "sandbox": (),
    "twilio": ("twilio_account_sid", "twilio_auth_token"),
    "aliyun": ("aliyun_access_key_id", "aliyun_access_key_secret", "aliyun_sign_name"),
    "tencent": (
        "tencent_secret_id",
        "tencent_secret_key",
        "tencent_sms_app_id",
        "tencent_sign_name",
    ),
}


_ENDPOINTS: Mapping[str, str] = {
    "twilio": "twilio_api_url",
    "aliyun": "aliyun_sms_endpoint",
    "tencent": "tencent_sms_endpoint",
}
# The carriers that sign nothing: receipts are accepted only with a path token or an IP list.
_RECEIPT_GUARDS: Mapping[str, tuple[str, str]] = {
    "aliyun": ("aliyun_path_token", "aliyun_allowed_ips"),
    "tencent": ("tencent_path_token", "tencent_allowed_ips"),
}


def carriers_in_use(settings: Settings) -> list[str]:
    return sorted({settings.provider, *settings.provider_by_pack.values()})


def check(settings: Settings, registry: Registry) -> None:
    """Raises ConfigError naming every missing setting and template code."""
    problems: list[Problem] = []
    if settings.demo and carriers_in_use(settings) != ["sandbox"]:
        # The simulator lets anyone text the demo borrowers: never through a real carrier.
        problems.append(
            Problem("settings", None, "demo mode sends through the sandbox only", "provider")
        )
    for name in carriers_in_use(settings):
        for field in _REQUIRED[name]:
            if getattr(settings, field) is None:
                problems.append(
                    Problem(
                        "settings",
                        None,
                        f"carrier {name} is in use but SMSBOT_{field.upper()} is not set",
                        field,
                    )
                )
        if name == "twilio" and not (settings.twilio_from or settings.twilio_messaging_service_sid):
            problems.append(
                Problem(
                    "settings",
                    None,
                    "carrier twilio needs SMSBOT_TWILIO_FROM or "
                    "SMSBOT_TWILIO_MESSAGING_SERVICE_SID",
                    "twilio_from",
                )
            )
        url_field = _ENDPOINTS.get(name)
        if url_field and not str(getattr(settings, url_field)).startswith(("http://", "https://")):
            problems.append(
                Problem(
                    "settings",
                    None,
                    f"SMSBOT_{url_field.upper()} must be an http:// or https:// URL",
                    url_field,
                )
            )
        if name == "twilio" and settings.public_url is None:
            problems.append(
                Problem(
                    "settings",
                    None,
                    "carrier twilio needs SMSBOT_PUBLIC_URL: each send names "
                    "<public url>/webhooks/twilio/status as its status callback",
                    "public_url",
                )
            )
    for flow_name in registry.names():
        problems += template_code_problems(settings, registry.get(flow_name).flow)
    if problems:
        raise ConfigError(problems)


def template_code_problems(settings: Settings, flow: Flow) -> list[Problem]:
    """Templates a carrier in use cannot send: no approved template code for it (also asked
    of every flow a reload would bring in: such a version is refused)."""
    problems: list[Problem] = []
    for name in carriers_in_use(settings):
        if name not in TEMPLATE_CARRIERS:
            continue
        for template, spec in sorted(flow.templates.items()):
            if name not in spec.codes:
                problems.append(
                    Problem(
                        f"flow {flow.name}",
                        None,
                        f"template {template} has no {name} template code",
                        f"templates.{template}.codes.{name}",
                        f"{name} sends approved template codes only",
                    )
                )
    return problems


def warnings(settings: Settings) -> list[str]:
    """What will not work though the service may start: receipts nobody may post."""
    found = []
    for name in carriers_in_use(settings):
        token, ips = _RECEIPT_GUARDS.get(name, (None, None))
        if token and getattr(settings, token) is None and not getattr(settings, ips or ""):
            found.append(
                f"carrier {name}: its delivery receipts will be refused until "
                f"SMSBOT_{token.upper()} or SMSBOT_{(ips or '').upper()} is set"
            )
    return found


def policy(settings: Settings) -> SendPolicy:
    return SendPolicy(
        max_attempts=settings.send_max_attempts,
        lease_s=settings.send_lease_s,
        reconcile_after_s=settings.reconcile_after_s,
        reconcile_give_up_s=settings.reconcile_give_up_s,
        backoff_base_s=settings.send_backoff_s,
        retry_for_s=settings.send_retry_for_s,
        config_hold_s=settings.send_config_hold_s,
        concurrency=settings.send_concurrency,
        rates={str(k): v for k, v in settings.send_rate.items()},
        burst=settings.send_burst,
    )


def _secret(settings: Settings, field: str) -> str:
    value = getattr(settings, field)
    assert value is not None  # check() ran first
    secret: str = value.get_secret_value()
    return secret


def build(
    settings: Settings,
    store: Store,
    session: aiohttp.ClientSession | None,
    clock: Clock | None = None,
) -> dict[str, Carrier]:
    """Every carrier in use (call :func:`check` first). ``session``: the service's one HTTP
    client session, needed by every real carrier. ``clock``: the service's. The carriers read
    the time from it too: a lookup compares the time the sender reserved a message (on this
    clock) with its own "now" (windows, settle delays), so both must be one clock. In
    production it is the wall clock; a test that moves it moves the carriers with it."""
    now = clock.now if clock is not None else None
    carriers: dict[str, Carrier] = {}
    for name in carriers_in_use(settings):
        if name == "sandbox":
            carriers[name] = SandboxCarrier(store)
            continue
        assert session is not None
        timeout = settings.send_timeout_s
        if name == "twilio":
            from bot.outbound.carriers.twilio import TwilioCarrier

            carriers[name] = TwilioCarrier(
                session,
                account_sid=_secret(settings, "twilio_account_sid"),
                auth_token=_secret(settings, "twilio_auth_token"),
                from_number=settings.twilio_from,
                messaging_service_sid=settings.twilio_messaging_service_sid,
                base_url=settings.twilio_api_url,
                status_callback=f"{settings.base_url}/webhooks/twilio/status",
                timeout_s=timeout,
                validity_period_s=settings.twilio_validity_period_s,
                now=now,
            )
        elif name == "aliyun":
            from bot.outbound.carriers.aliyun import AliyunCarrier

            assert settings.aliyun_sign_name is not None
            carriers[name] = AliyunCarrier(
                session,
                access_key_id=_secret(settings, "aliyun_access_key_id"),
                access_key_secret=_secret(settings, "aliyun_access_key_secret"),
                sign_name=settings.aliyun_sign_name,
                endpoint=settings.aliyun_sms_endpoint,
                timeout_s=timeout,
                absent_after_s=settings.reconcile_settle_s,
                now=now,
            )
        else:
            from bot.outbound.carriers.tencent import TencentCarrier

            assert settings.tencent_sms_app_id is not None
            assert settings.tencent_sign_name is not None
            carriers[name] = TencentCarrier(
                session,
                secret_id=_secret(settings, "tencent_secret_id"),
                secret_key=_secret(settings, "tencent_secret_key"),
                sdk_app_id=settings.tencent_sms_app_id,
                sign_name=settings.tencent_sign_name,
                endpoint=settings.tencent_sms_endpoint,
                region=settings.tencent_region,
                timeout_s=timeout,
                now=now,
            )
    return carriers


def sandbox_dispatcher(store: Store, gate: Gate, registry: Registry, clock: Clock) -> Dispatcher:
    """The gate step and a sender on the sandbox carrier only (tests, tools without a
    service)."""
    sender = Sender(store, {"sandbox": SandboxCarrier(store)}, clock)
    return Dispatcher(store, gate, registry, clock, sender, Routing("sandbox"))
