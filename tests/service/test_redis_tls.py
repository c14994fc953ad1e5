"""``rediss://`` honours ssl_ca_certs, ssl_cert_reqs and client certificates (issue 16, item
17), on a real redis-server that listens on TLS only and requires a client certificate."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bot.errors import ConfigError
from bot.settings import load_settings
from bot.storage.base import StoreUnavailable
from bot.storage.redis import RedisStore


@dataclass(frozen=True)
class Tls:
    port: int
    ca: Path
    client_cert: Path
    client_key: Path
    other_ca: Path  # a CA that signed nothing of the server's

    def url(self, host: str = "localhost", **options: str) -> str:
        query = "&".join(f"{k}={v}" for k, v in options.items())
        return f"rediss://{host}:{self.port}/0" + (f"?{query}" if query else "")


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def _certificate(d: Path, name: str, ca: str, san: str) -> None:
    """``name``.pem/-key.pem, signed by ``ca``.pem, with ``san`` as subjectAltName."""
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}-key.pem",
             "-out", f"{name}.csr", "-subj", f"/CN={name}", cwd=d)  # fmt: skip
    (d / f"{name}.ext").write_text(f"subjectAltName={san}\n")
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}-key.pem",
             "-CAcreateserial", "-out", f"{name}.pem", "-days", "2",
             "-extfile", f"{name}.ext", cwd=d)  # fmt: skip


def _ca(d: Path, name: str) -> None:
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}-key.pem",
             "-out", f"{name}.pem", "-days", "2", "-subj", f"/CN={name}", cwd=d)  # fmt: skip


@pytest.fixture(scope="module")
def tls_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tls]:
    if shutil.which("openssl") is None or shutil.which("redis-server") is None:
        pytest.skip("needs the openssl and redis-server commands")
    d = tmp_path_factory.mktemp("tls")
    _ca(d, "ca")
    _ca(d, "other-ca")
    _certificate(d, "server", "ca", "DNS:localhost,IP:127.0.0.1")
    _certificate(d, "client", "ca", "DNS:client")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    # fmt: off
    proc = subprocess.Popen(
        ["redis-server", "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1",
         "--tls-cert-file", "server.pem", "--tls-key-file", "server-key.pem",
         "--tls-ca-cert-file", "ca.pem", "--tls-auth-clients", "yes",
         "--save", "", "--appendonly", "no", "--dir", str(d)],
        cwd=d, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    # fmt: on
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.skip("this redis-server does not serve TLS")
                time.sleep(0.05)
        yield Tls(port, d / "ca.pem", d / "client.pem", d / "client-key.pem", d / "other-ca.pem")
    finally:
        proc.terminate()
        proc.wait(timeout=5)


async def _works(url: str) -> bool:
    store = RedisStore.from_url(url, socket_connect_timeout=3.0)
    try:
        await store.ping()
        return True
    except StoreUnavailable:
        return False
    finally:
        await store.close()


async def test_rediss_verifies_the_server_with_the_given_ca_and_sends_a_client_cert(
    tls_redis: Tls,
) -> None:
    client = {"ssl_certfile": str(tls_redis.client_cert), "ssl_keyfile": str(tls_redis.client_key)}
    ca = {"ssl_ca_certs": str(tls_redis.ca)}
    assert await _works(tls_redis.url(**ca, **client))
    assert await _works(tls_redis.url("127.0.0.1", **ca, **client))  # the IP in the SAN
    # The server requires a client certificate: without one the handshake fails.
    assert not await _works(tls_redis.url(**ca))
    # The system's CAs (the default) and another CA do not know the server's certificate.
    assert not await _works(tls_redis.url(**client))
    assert not await _works(tls_redis.url(ssl_ca_certs=str(tls_redis.other_ca), **client))
    # ssl_cert_reqs=none: the server is not verified (a test server), the client cert still sent.
    assert await _works(tls_redis.url(ssl_cert_reqs="none", **client))
    assert await _works(tls_redis.url(ssl_cert_reqs="required", **ca, **client))


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ("ssl_ca_cert=/etc/ca.pem", "unknown TLS option(s) ssl_ca_cert"),
        ("ssl_cert_reqs=sometimes", "ssl_cert_reqs must be one of"),
        ("ssl_ca_certs=/no/such/ca.pem", "Redis TLS set-up"),
        ("ssl_certfile=/no/such/client.pem", "Redis TLS set-up"),
        ("ssl_keyfile=/k.pem", "ssl_keyfile without ssl_certfile"),
        ("ssl_cert_reqs=none&ssl_check_hostname=true", "ssl_check_hostname needs"),
    ],
)
def test_bad_tls_options_fail_at_start_with_their_reason(query: str, reason: str) -> None:
    with pytest.raises(ConfigError, match=reason.replace("(", r"\(").replace(")", r"\)")):
        load_settings(redis_url=f"rediss://:s3cret@redis.example.cn:6380/0?{query}")


def test_tls_options_on_a_plain_url_and_passwords_in_errors() -> None:
    with pytest.raises(ConfigError, match="not rediss://"):
        load_settings(redis_url="redis://localhost:6379/0?ssl_ca_certs=/etc/ca.pem")
    with pytest.raises(ConfigError) as refused:
        load_settings(redis_url="redis://:s3cret@localhost:6379/zero")
    assert "s3cret" not in str(refused.value) and ":***@" in str(refused.value)
