"""The deployment files: the Dockerfile's invariants (parsed), compose.yaml (read; and
``docker compose config`` where the compose plugin is installed), the systemd unit
(``systemd-analyze verify`` where it exists), and the env-file template."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import policy
from bot.settings import SECRETS, Settings
from policy.pack import CONFIG_DIR

ROOT = Path(__file__).resolve().parents[1]
UNIT = ROOT / "deploy" / "smsbot.service"
ENV_EXAMPLE = ROOT / "deploy" / "smsbot.env.example"


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order; continuation lines joined, comments dropped."""
    text = (ROOT / "Dockerfile").read_text()
    lines = [ln for ln in text.splitlines() if not ln.lstrip().startswith("#")]
    joined = re.sub(r"\\\n", " ", "\n".join(lines))
    out = []
    for line in joined.splitlines():
        if line.strip():
            word, _, rest = line.strip().partition(" ")
            out.append((word.upper(), " ".join(rest.split())))
    return out


def test_dockerfile_runs_unprivileged_with_the_model_built_in() -> None:
    steps = dockerfile()
    kinds = [k for k, _ in steps]
    assert steps[0] == ("FROM", "python:3.11-slim")
    assert kinds.count("FROM") == 1
    users = [i for i, (k, _) in enumerate(steps) if k == "USER"]
    assert users, "no USER: the service would run as root"
    assert steps[users[-1]][1] not in {"root", "0"}
    install = next(i for i, (k, a) in enumerate(steps) if k == "RUN" and "pip install ." in a)
    train = next(i for i, (k, a) in enumerate(steps) if k == "RUN" and "smsbot intents train" in a)
    # Installed as root, trained as the service's user (it owns the cache it may refresh).
    assert install < users[-1] < train
    env = " ".join(a for k, a in steps if k == "ENV")
    assert "SMSBOT_CACHE_DIR=/var/cache/smsbot" in env
    health = [a for k, a in steps if k == "HEALTHCHECK"]
    assert len(health) == 1 and "/readyz" in health[0]
    cmd = [a for k, a in steps if k == "CMD"][-1]
    assert cmd.startswith("[")  # exec form: the supervisor is PID 1 and gets SIGTERM
    assert '"--workers", "2"' in cmd and '"--host", "0.0.0.0"' in cmd


def test_dockerfile_copies_what_exists_and_is_not_ignored() -> None:
    ignored = {
        ln.strip()
        for ln in (ROOT / ".dockerignore").read_text().splitlines()
        if ln.strip() and not ln.startswith("#")
    }
    for kind, args in dockerfile():
        if kind == "COPY":
            *sources, _ = args.split()
            for source in sources:
                assert (ROOT / source).exists(), source
                assert source not in ignored, source


def test_the_images_config_copy_lands_where_the_code_reads_it() -> None:
    # The Dockerfile copies config/ into site-packages beside the packages: the code must
    # look for it there, next to policy/ and bot/.
    packages = Path(policy.__file__).resolve().parents[1]
    assert packages / "config" == CONFIG_DIR
    assert Settings().compliance_file.parent == CONFIG_DIR
    assert Settings().desk_file.parent == CONFIG_DIR


def test_compose_runs_two_workers_on_a_persistent_redis() -> None:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    redis = compose["services"]["redis"]
    assert "--appendonly" in redis["command"]
    assert redis["command"][redis["command"].index("--appendonly") + 1] == "yes"
    volume, _, target = redis["volumes"][0].partition(":")
    assert target == "/data" and volume in compose["volumes"]
    bot = compose["services"]["smsbot"]
    assert bot["command"][-2:] == ["--workers", "2"]
    assert bot["environment"]["SMSBOT_REDIS_URL"].startswith("redis://redis:")
    assert bot["depends_on"]["redis"]["condition"] == "service_healthy"
    assert len(bot["ports"]) == 1
    # Secrets only through the env file, which git never takes.
    assert not {k.removeprefix("SMSBOT_").lower() for k in bot["environment"]} & SECRETS
    env_file = bot["env_file"][0]["path"]
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", env_file], cwd=ROOT, check=False, capture_output=True
    )
    assert ignored.returncode == 0, f"{env_file} is not in .gitignore"


def test_docker_compose_accepts_the_file(tmp_path: Path) -> None:
    docker = shutil.which("docker")
    if (
        docker is None
        or subprocess.run(
            [docker, "compose", "version"], capture_output=True, check=False
        ).returncode
    ):
        pytest.skip("docker compose is not installed")
    shutil.copy(ROOT / "compose.yaml", tmp_path / "compose.yaml")
    (tmp_path / "deploy").mkdir()
    shutil.copy(ENV_EXAMPLE, tmp_path / "deploy" / "smsbot.env")
    done = subprocess.run(
        [docker, "compose", "-f", str(tmp_path / "compose.yaml"), "config", "--quiet"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def unit() -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            settings.setdefault(key, []).append(value)
    return settings


def test_the_systemd_unit_supervises_and_hardens() -> None:
    u = unit()
    assert u["User"] == ["smsbot"] and u["EnvironmentFile"] == ["/etc/smsbot/smsbot.env"]
    assert u["Restart"] == ["on-failure"]
    assert u["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert u["KillMode"] == ["mixed"]  # SIGTERM to the supervisor only: it forwards it once
    assert "--workers" in u["ExecStart"][0]
    for option in ("NoNewPrivileges", "ProtectSystem", "ProtectHome", "PrivateTmp"):
        assert u[option][0] in {"yes", "strict"}, option


@pytest.mark.parametrize(
    "names", [("smsbot.service",), ("smsbot-retention.service", "smsbot-retention.timer")]
)
def test_systemd_analyze_verifies_the_units(tmp_path: Path, names: tuple[str, ...]) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    # verify checks that ExecStart's program exists: this venv's smsbot stands in for the
    # installed one (/opt/smsbot/venv), everything else as shipped.
    smsbot = Path(sys.executable).parent / "smsbot"
    assert smsbot.exists()
    for name in names:
        text = (UNIT.parent / name).read_text().replace("/opt/smsbot/venv/bin/smsbot", str(smsbot))
        (tmp_path / name).write_text(text)
    done = subprocess.run(
        [analyze, "verify", *(str(tmp_path / name) for name in names)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    for name in names:
        assert name not in done.stderr, done.stderr  # no warning about our units


def test_the_retention_timer_runs_the_retention_daily() -> None:
    service = (UNIT.parent / "smsbot-retention.service").read_text()
    timer = (UNIT.parent / "smsbot-retention.timer").read_text()
    assert "ExecStart=/opt/smsbot/venv/bin/smsbot retention run\n" in service
    assert "Type=oneshot" in service and "User=smsbot" in service
    assert "OnCalendar=*-*-* 03:30:00" in timer and "Persistent=true" in timer


def test_the_env_template_names_real_settings() -> None:
    names = re.findall(r"^#? ?SMSBOT_([A-Z0-9_]+)=", ENV_EXAMPLE.read_text(), re.M)
    assert {"API_KEY", "SESSION_KEY"} <= set(names)
    for name in names:
        assert name.lower() in Settings.model_fields, name
    # A template, not secrets: every secret in it is empty.
    for line in ENV_EXAMPLE.read_text().splitlines():
        key, _, value = line.partition("=")
        if key.removeprefix("SMSBOT_").lower() in SECRETS:
            assert value == "", line
