"""Redis over TLS with a password, as ElastiCache runs it (encryption in transit, AUTH token): a real redis-server
started with `--tls-port` and `requirepass` and a throwaway CA made here; the processor's stores and the API
connect to it through the same settings (`REDIS_URL=rediss://...`, `REDIS_PASSWORD`, `REDIS_TLS_CA_FILE`)."""

from __future__ import annotations

import datetime
import ipaddress
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
import redis
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from kcl_app.bootstrap import bootstrap
from kcl_app.handler import StreamRecord
from tests.conftest import RECENTCHANGE
from wikitide import keys
from wikitide.errors import ConfigError
from wikitide.localstack.services import free_port, port_open
from wikitide.redis_client import connect, make_redis
from wikitide.settings import Settings

pytestmark = pytest.mark.integration
PASSWORD = "a-throwaway-auth-token-0123456789"


def _key_and_name(common_name: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Name]:
    return ec.generate_private_key(ec.SECP256R1()), x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write_pem(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def make_ca(directory: Path, name: str) -> tuple[Path, ec.EllipticCurvePrivateKey, x509.Certificate]:
    key, subject = _key_and_name(name)
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return _write_pem(directory / f"{name}.pem", cert.public_bytes(serialization.Encoding.PEM)), key, cert


def make_server_cert(directory: Path, ca_key: ec.EllipticCurvePrivateKey, ca: x509.Certificate) -> tuple[Path, Path]:
    key, subject = _key_and_name("127.0.0.1")
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(ca.subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                       critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return (_write_pem(directory / "server.pem", cert.public_bytes(serialization.Encoding.PEM)),
            _write_pem(directory / "server.key", key_pem))


@dataclass(frozen=True)
class TlsRedis:
    port: int
    ca_file: Path
    other_ca_file: Path

    @property
    def url(self) -> str:
        return f"rediss://127.0.0.1:{self.port}/0"


@pytest.fixture(scope="module")
def tls_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsRedis]:
    directory = tmp_path_factory.mktemp("redis-tls")
    ca_file, ca_key, ca = make_ca(directory, "test-ca")
    other_ca_file, _, _ = make_ca(directory, "other-ca")
    cert_file, key_file = make_server_cert(directory, ca_key, ca)
    port = free_port()
    process = subprocess.Popen(
        ["redis-server", "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1",
         "--tls-cert-file", str(cert_file), "--tls-key-file", str(key_file), "--tls-ca-cert-file", str(ca_file),
         "--tls-auth-clients", "no", "--requirepass", PASSWORD, "--save", "", "--appendonly", "no",
         "--dir", str(directory)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while not port_open(port):
            assert process.poll() is None, "redis-server exited: was it built without TLS?"
            assert time.monotonic() < deadline, "redis-server did not listen on its TLS port"
            time.sleep(0.1)
        yield TlsRedis(port, ca_file, other_ca_file)
    finally:
        process.terminate()
        process.wait(timeout=10)


def _settings(tls_redis: TlsRedis, **overrides: str) -> Settings:
    env = {"REDIS_URL": tls_redis.url, "REDIS_PASSWORD": PASSWORD, "REDIS_TLS_CA_FILE": str(tls_redis.ca_file)}
    return Settings.from_env({**env, **overrides})


def test_the_settings_connect_with_tls_and_the_password(tls_redis: TlsRedis) -> None:
    client = connect(_settings(tls_redis), decode_responses=True)
    client.set("wt:tls-probe", "yes")
    assert client.get("wt:tls-probe") == "yes"
    conn = client.connection_pool.get_connection()
    try:
        assert conn._sock.version() in {"TLSv1.2", "TLSv1.3"}  # the socket really is TLS
    finally:
        client.connection_pool.release(conn)


def test_the_password_is_required_and_never_shown(tls_redis: TlsRedis) -> None:
    with pytest.raises(redis.AuthenticationError):
        connect(_settings(tls_redis, REDIS_PASSWORD="")).ping()
    with pytest.raises(redis.AuthenticationError):
        connect(_settings(tls_redis, REDIS_PASSWORD="wrong")).ping()
    assert PASSWORD not in repr(_settings(tls_redis))


def test_a_server_certificate_from_another_ca_is_refused(tls_redis: TlsRedis) -> None:
    with pytest.raises(redis.ConnectionError, match="certificate verify failed"):
        connect(_settings(tls_redis, REDIS_TLS_CA_FILE=str(tls_redis.other_ca_file))).ping()


def test_plain_text_does_not_reach_a_tls_server(tls_redis: TlsRedis) -> None:
    client = make_redis(f"redis://127.0.0.1:{tls_redis.port}/0", password=PASSWORD, socket_timeout=2)
    with pytest.raises(redis.ConnectionError):
        client.ping()


def test_a_ca_file_without_tls_is_a_configuration_error(tls_redis: TlsRedis) -> None:
    with pytest.raises(ConfigError, match="REDIS_TLS_CA_FILE"):
        connect(_settings(tls_redis, REDIS_URL=f"redis://127.0.0.1:{tls_redis.port}/0"))


def test_the_processor_and_the_api_use_redis_over_tls(tls_redis: TlsRedis, provisioned: object) -> None:
    from api import create_app

    stack_name = provisioned.stream_name.removesuffix("-changes")  # type: ignore[attr-defined]
    settings = replace(Settings.from_env(), stack_name=stack_name, redis_url=tls_redis.url, redis_password=PASSWORD,
                       redis_ca_file=str(tls_redis.ca_file), metrics="off")
    direct = connect(settings, decode_responses=True)
    direct.flushdb()
    path = RECENTCHANGE / "ndjson" / "kirajano_recentchange_2021-08-27.ndjson"
    payloads = [line.encode() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()][:40]
    records = [StreamRecord(p, "shardId-000000000001", 10**20 + i, 1_630_070_400_000 + i)
               for i, p in enumerate(payloads)]

    bootstrap(settings)(records)

    assert direct.get(keys.LATEST_MINUTE) is not None  # the processor merged its counters over TLS
    client = create_app(settings).test_client()
    health = client.get("/health").get_json()
    assert health["dependencies"]["redis"]["ok"], health
    # The newest edits live only in Redis: the API read them over TLS.
    assert len(client.get("/v1/edits/recent?limit=5").get_json()["edits"]) == 5
    # The rate limits are counted in the same Redis, over TLS with its password (not in the memory fallback).
    assert direct.keys("LIMITS:LIMITER/wt:limits/*/api_v1.recent_edits/*")
