"""Settings: one validated object; secrets from the environment only; clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.settings import load_settings
from common.errors import ConfigError


def test_defaults_are_zero_setup(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SMSBOT_CONFIG", str(tmp_path / "absent.yaml"))
    s = load_settings()
    assert (s.host, s.port, s.redis_url, s.provider) == ("127.0.0.1", 8080, None, "sandbox")
    assert s.base_url == "http://127.0.0.1:8080"


def test_environment_overrides_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    cfg = tmp_path / "smsbot.yaml"
    cfg.write_text("port: 9000\nhost: 0.0.0.0\n", encoding="utf-8")
    monkeypatch.setenv("SMSBOT_CONFIG", str(cfg))
    monkeypatch.setenv("SMSBOT_PORT", "9100")
    s = load_settings()
    assert (s.host, s.port) == ("0.0.0.0", 9100)


def test_unknown_keys_are_rejected(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    cfg = tmp_path / "smsbot.yaml"
    cfg.write_text("prot: 9000\n", encoding="utf-8")
    monkeypatch.setenv("SMSBOT_CONFIG", str(cfg))
    with pytest.raises(ConfigError, match="prot"):
        load_settings()


def test_secrets_never_come_from_a_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    cfg = tmp_path / "smsbot.yaml"
    cfg.write_text("twilio_auth_token: abc\n", encoding="utf-8")
    monkeypatch.setenv("SMSBOT_CONFIG", str(cfg))
    with pytest.raises(ConfigError, match="SMSBOT_TWILIO_AUTH_TOKEN in the environment"):
        load_settings()


def test_invalid_yaml_names_the_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    cfg = tmp_path / "smsbot.yaml"
    cfg.write_text("port: 1\nhost: [\n", encoding="utf-8")
    monkeypatch.setenv("SMSBOT_CONFIG", str(cfg))
    with pytest.raises(ConfigError, match=r"smsbot.yaml:3: invalid YAML"):
        load_settings()


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("SMSBOT_PORT", "70000", "port"),
        ("SMSBOT_PUBLIC_URL", "sms.example.cn", "public_url"),
        ("SMSBOT_ALIYUN_ALLOWED_IPS", '["10.0.0.999"]', "10.0.0.999"),
    ],
)
def test_bad_values_are_clear(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, key: str, value: str, message: str
) -> None:
    monkeypatch.setenv("SMSBOT_CONFIG", str(tmp_path / "absent.yaml"))
    monkeypatch.setenv(key, value)
    with pytest.raises(ConfigError, match=message):
        load_settings()
