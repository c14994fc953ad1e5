"""The service's settings: one validated object (SMSBOT_* environment, optional YAML file).

Secrets (auth tokens, API key) are accepted from the environment only: a committed config file
must never hold one, so the YAML file is refused if it names a secret.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from bot.errors import ConfigError, Problem
from bot.transport.auth import parse_allowlist

CONFIG_FILE = Path(__file__).resolve().parent.parent / "config" / "smsbot.yaml"
SECRETS = frozenset(
    {"api_key", "twilio_auth_token", "generic_secret", "aliyun_path_token", "tencent_path_token"}
)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SMSBOT_", extra="forbid", frozen=True)

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    # The URL providers call us at, as they see it (Twilio signs it); default http://host:port.
    public_url: str | None = None
    redis_url: str | None = None  # unset: the in-process memory store
    provider: Literal["sandbox"] = "sandbox"
    demo: bool = False  # demo accounts and the /simulator page's time controls
    flows_dir: Path = Path(__file__).resolve().parent.parent / "dialogs" / "flows"
    compliance_file: Path = Path(__file__).resolve().parent.parent / "config" / "compliance.yaml"
    max_body_bytes: int = Field(default=256 * 1024, ge=1024)
    replay_window_s: int = Field(default=300, ge=1)
    aliyun_allowed_ips: list[str] = Field(default_factory=list)
    tencent_allowed_ips: list[str] = Field(default_factory=list)
    timer_interval_s: float = Field(default=1.0, gt=0)
    recovery_interval_s: float = Field(default=30.0, gt=0)
    lock_ttl_ms: int = Field(default=30_000, ge=1000)
    # Accept and store inbound messages but do not process them (maintenance); the queue is
    # processed when the service next starts without it.
    pause_processing: bool = False
    access_log: bool = False  # off by default: it doubles the cost of a request
    # Secrets: environment only.
    api_key: SecretStr | None = None
    twilio_auth_token: SecretStr | None = None
    generic_secret: SecretStr | None = None
    aliyun_path_token: SecretStr | None = None
    tencent_path_token: SecretStr | None = None

    @field_validator("public_url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return v.rstrip("/") if v else v

    @field_validator("aliyun_allowed_ips", "tencent_allowed_ips")
    @classmethod
    def _networks(cls, v: list[str]) -> list[str]:
        parse_allowlist(v)  # a typo fails at start-up, not on every request
        return v

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
                Problem("settings", None, err["msg"], ".".join(str(p) for p in err["loc"]))
                for err in exc.errors()
            ]
        ) from exc
