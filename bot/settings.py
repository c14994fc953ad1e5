"""The service's settings: one validated object (SMSBOT_* environment, optional YAML file).

Secrets (auth tokens, API key) are accepted from the environment only: a committed config file
must never hold one, so the YAML file is refused if it names a secret.
"""

from __future__ import annotations

from ipaddress import ip_address
from pathlib import Path
from typing import Any, Literal, Self

import yaml
from pydantic import (
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from bot.transport.auth import parse_allowlist
from common.errors import ConfigError, Problem

CONFIG_FILE = Path(__file__).resolve().parent.parent / "config" / "smsbot.yaml"
SECRETS = frozenset(
    {
        "api_key",
        "twilio_account_sid",
        "twilio_auth_token",
        "generic_secret",
        "aliyun_path_token",
        "tencent_path_token",
        "aliyun_access_key_id",
        "aliyun_access_key_secret",
        "tencent_secret_id",
        "tencent_secret_key",
        "session_key",
        "metrics_token",
    }
)
CarrierSetting = Literal["sandbox", "twilio", "aliyun", "tencent"]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SMSBOT_", extra="forbid", frozen=True)

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    # The URL providers call us at, as they see it (Twilio signs it); default http://host:port.
    public_url: str | None = None
    redis_url: str | None = None  # unset: the in-process memory store
    # Which carrier sends: the default, and per compliance rule pack (e.g. {"us": "twilio"}).
    provider: CarrierSetting = "sandbox"
    provider_by_pack: dict[str, CarrierSetting] = Field(default_factory=dict)
    twilio_from: str | None = None  # a sending number, or:
    twilio_messaging_service_sid: str | None = None
    twilio_api_url: str = "https://api.twilio.com"
    # How long Twilio may queue a message before dropping it (its ValidityPeriod). Short, so a
    # reminder never arrives hours late (at night), and so an ambiguous send can be ruled out
    # from the message list soon (bot/outbound/carriers/twilio.py).
    twilio_validity_period_s: int = Field(default=1800, ge=1, le=36000)
    aliyun_sign_name: str | None = None
    aliyun_sms_endpoint: str = "https://dysmsapi.aliyuncs.com"
    tencent_sms_app_id: str | None = None
    tencent_sign_name: str | None = None
    tencent_sms_endpoint: str = "https://sms.tencentcloudapi.com"
    tencent_region: str = "ap-guangzhou"
    # The senders (bot.outbound.sender): per-call timeout, sends/s per carrier shared by all
    # processes (unset: no limit), calls in flight per carrier and process, attempts per
    # message, and how long an ambiguous attempt waits before the carrier is asked about it.
    send_timeout_s: float = Field(default=10.0, gt=0)
    send_rate: dict[CarrierSetting, float] = Field(default_factory=dict)
    send_burst: int = Field(default=50, ge=1)
    send_concurrency: int = Field(default=256, ge=1)
    send_max_attempts: int = Field(default=20, ge=1)
    # Retryable failures (throttling, a carrier outage) are retried this long, then the
    # message fails and a person is told; a carrier refusing our set-up (credentials, URL)
    # holds messages, retried this often, and fails readiness until fixed.
    send_retry_for_s: float = Field(default=3600.0, gt=0)
    send_config_hold_s: float = Field(default=60.0, gt=0)
    send_lease_s: float = Field(default=30.0, gt=0)
    reconcile_after_s: float = Field(default=30.0, ge=0)
    # A provider's records are not readable the moment it accepts a message: it is only
    # called "absent" (and sent again) after this long; and an ambiguous send nobody could
    # rule in or out this long after it was reserved goes to a person as "unknown".
    reconcile_settle_s: float = Field(default=300.0, ge=0)
    reconcile_give_up_s: float = Field(default=3600.0, gt=0)
    send_backoff_s: float = Field(default=2.0, gt=0)  # the first retry's wait, then doubling
    sender_poll_s: float = Field(default=0.5, gt=0)
    demo: bool = False  # demo accounts and the /simulator page's time controls
    # The simulator has no authentication and acts on every account it can see (reads phones
    # and texts, injects replies and payments, moves the clock every timer follows): demo mode
    # refuses a shared store or a reachable interface unless this is set (--demo-force).
    demo_force: bool = False
    flows_dir: Path = Path(__file__).resolve().parent.parent / "dialogs" / "flows"
    compliance_file: Path = Path(__file__).resolve().parent.parent / "config" / "compliance.yaml"
    # The agent console's case queue: SLA per handoff reason (bot/desk/config.py), and how
    # often unclaimed cases past it are looked for.
    desk_file: Path = Path(__file__).resolve().parent.parent / "config" / "desk.yaml"
    # Retention of personal data (bot/retention): read by `smsbot retention run` only.
    retention_file: Path = Path(__file__).resolve().parent.parent / "config" / "retention.yaml"
    desk_sla_interval_s: float = Field(default=10.0, gt=0)
    # How often due campaigns release accounts (bot.campaigns.service). A round releases up
    # to rate x interval, so the pace holds at any interval; shorter spreads it more evenly.
    campaign_release_interval_s: float = Field(default=1.0, gt=0, le=60)
    max_body_bytes: int = Field(default=256 * 1024, ge=1024)
    # POST /api/accounts only: a batch of up to 10,000 rows (a row is 150-400 bytes).
    max_batch_bytes: int = Field(default=8 * 1024 * 1024, ge=1024)
    # A request's body must have arrived this long after its headers, or the connection is
    # answered 408 and closed: a client trickling its body byte by byte (to hold a connection
    # and a task forever) is cut off. Providers post a few KB at once.
    body_timeout_s: float = Field(default=10.0, gt=0)
    # An idle keep-alive connection, and one whose next request's headers have not all
    # arrived, is closed after this long (aiohttp's keep-alive timer also bounds the headers).
    idle_timeout_s: float = Field(default=30.0, gt=0)
    replay_window_s: int = Field(default=300, ge=1)
    aliyun_allowed_ips: list[str] = Field(default_factory=list)
    tencent_allowed_ips: list[str] = Field(default_factory=list)
    timer_interval_s: float = Field(default=1.0, gt=0)
    # An account lock's lease: kept alive while its holder works (bot/pipeline.py), so it only
    # runs out when the holder died; then a waiting reply is taken over within about this
    # long. The recovery scan (a SCAN of the keyspace) finds the queue a dead process left
    # when no reply came after it.
    recovery_interval_s: float = Field(default=10.0, gt=0)
    lock_ttl_ms: int = Field(default=5_000, ge=1000)
    # Accept and store inbound messages but do not process them (maintenance); the queue is
    # processed when the service next starts without it.
    pause_processing: bool = False
    access_log: bool = False  # off by default: it doubles the cost of a request
    # Log lines (bot/telemetry/logs.py): JSON for a log collector, key=value for a person;
    # "auto" is key=value on a terminal and JSON otherwise.
    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # /metrics on a listener of its own (bot/telemetry/endpoint.py): an interface only the
    # scraper reaches. Unset: /metrics is on the service's port with SMSBOT_METRICS_TOKEN only.
    metrics_host: str = "127.0.0.1"
    metrics_port: int | None = Field(default=None, ge=1, le=65535)
    # The agents' console (bot/console). A session ends after idle_s without a request, and
    # max_age_s after the sign-in whatever happens (an agent signs in again each shift); the
    # cookie is only sent over HTTPS when secure is set (set it whenever the console is
    # reached over HTTPS, as it must be off the machine).
    session_idle_s: int = Field(default=12 * 3600, ge=60)
    session_max_age_s: int = Field(default=24 * 3600, ge=60)
    session_cookie_secure: bool = False
    # Sign-in attempts (right or wrong), shared by every process through the store: a burst of
    # this many per agent name and per client address, then one more per this many seconds.
    login_burst_per_name: int = Field(default=5, ge=1)
    login_burst_per_ip: int = Field(default=20, ge=1)
    login_refill_s: float = Field(default=60.0, gt=0)
    # Secrets: environment only.
    api_key: SecretStr | None = None
    twilio_auth_token: SecretStr | None = None
    generic_secret: SecretStr | None = None
    aliyun_path_token: SecretStr | None = None
    tencent_path_token: SecretStr | None = None
    twilio_account_sid: SecretStr | None = None
    aliyun_access_key_id: SecretStr | None = None
    aliyun_access_key_secret: SecretStr | None = None
    tencent_secret_id: SecretStr | None = None
    tencent_secret_key: SecretStr | None = None
    # Encrypts the console's session cookie (Fernet; every process must share it). Unset: a
    # key for this run only, so sessions end at a restart (a warning says so at start).
    session_key: SecretStr | None = None
    # Scrapes /metrics from anywhere with "Authorization: Bearer <token>"; unset, only clients
    # on the loopback interface may (bot/telemetry/endpoint.py).
    metrics_token: SecretStr | None = None

    @field_validator("send_lease_s")
    @classmethod
    def _lease(cls, v: float, info: ValidationInfo) -> float:
        # A sender whose lease ended mid-call would be reconciled while still calling.
        timeout = info.data.get("send_timeout_s", 10.0)
        if v <= timeout:
            raise ValueError(f"must be longer than send_timeout_s ({timeout}s)")
        return v

    @field_validator("session_key")
    @classmethod
    def _fernet_key(cls, v: SecretStr | None) -> SecretStr | None:
        if v is not None:
            from cryptography.fernet import Fernet

            try:
                Fernet(v.get_secret_value().encode())
            except ValueError:
                # Never the value itself in the message: it is a secret even when malformed.
                raise ValueError(
                    "must be 32 url-safe base64-encoded bytes (make one with: python -c"
                    ' "from cryptography.fernet import Fernet;'
                    ' print(Fernet.generate_key().decode())")'
                ) from None
        return v

    @field_validator("public_url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return v.rstrip("/") if v else v

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, v: str | None) -> str | None:
        if v:
            from bot.storage.connect import connection_for

            # Parsed (TLS files loaded) now: a typo fails at start-up with its reason, not as
            # a traceback when the store first connects. Nothing connects here.
            connection_for(v)
        return v

    @field_validator("aliyun_allowed_ips", "tencent_allowed_ips")
    @classmethod
    def _networks(cls, v: list[str]) -> list[str]:
        parse_allowlist(v)  # a typo fails at start-up, not on every request
        return v

    @model_validator(mode="after")
    def _demo_is_private(self) -> Self:
        if not self.demo or self.demo_force:
            return self
        if self.redis_url:
            raise ValueError(
                "demo mode refuses a shared store (SMSBOT_REDIS_URL is set): its simulator,"
                " without authentication, would read and text every account and move their"
                " timers; unset SMSBOT_REDIS_URL, or force with --demo-force"
                " (SMSBOT_DEMO_FORCE=1)"
            )
        if not _loopback(self.host):
            raise ValueError(
                f"demo mode listens on loopback only, not {self.host!r}: its simulator has no"
                " authentication; use 127.0.0.1, or force with --demo-force (SMSBOT_DEMO_FORCE=1)"
            )
        return self

    @property
    def base_url(self) -> str:
        return self.public_url or f"http://{self.host}:{self.port}"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _YamlSource(settings_cls))


def _loopback(host: str) -> bool:
    """Whether ``host`` only listens on this machine (127.0.0.0/8, ::1, localhost)."""
    if host.strip().lower().rstrip(".") == "localhost":
        return True
    try:
        return ip_address(host.strip().strip("[]")).is_loopback
    except ValueError:
        return False  # another name may resolve to anything: not provably private


class _YamlSource(PydanticBaseSettingsSource):
    """``config/smsbot.yaml`` (or $SMSBOT_CONFIG), below the environment in priority."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        import os

        path = Path(os.environ.get("SMSBOT_CONFIG", CONFIG_FILE))
        if not path.exists():
            return {}
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            raise ConfigError(
                [Problem(str(path), mark.line + 1 if mark else None, f"invalid YAML: {exc}")]
            ) from exc
        if not isinstance(data, dict):
            raise ConfigError([Problem(str(path), 1, "expected a mapping of settings")])
        leaked = sorted(SECRETS & set(data))
        if leaked:
            raise ConfigError(
                [
                    Problem(
                        str(path),
                        None,
                        f"set SMSBOT_{k.upper()} in the environment instead",
                        k,
                        "secrets never live in a file",
                    )
                    for k in leaked
                ]
            )
        return data


def load_settings(**overrides: Any) -> Settings:
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise ConfigError(
            [
                Problem(
                    "settings",
                    None,
                    # pydantic's "Value error, " prefix says nothing to an operator.
                    err["msg"].removeprefix("Value error, "),
                    ".".join(str(p) for p in err["loc"]) or None,
                )
                for err in exc.errors()
            ]
        ) from exc
