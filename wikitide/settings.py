"""One frozen settings object per process, read from the environment at the entrypoint and nowhere else.

Redis: `REDIS_URL` (`rediss://host:port/0` for TLS, as ElastiCache with encryption in transit needs), the AUTH
password apart in `REDIS_PASSWORD` (ECS injects it from Secrets Manager; a password inside the URL works too),
and `REDIS_TLS_CA_FILE` when the server's certificate is not signed by a CA the system trusts (a test's own).

Endpoints follow the AWS SDK's own variables (`AWS_ENDPOINT_URL_KINESIS`, `AWS_ENDPOINT_URL_DYNAMODB`, ...,
or `AWS_ENDPOINT_URL` for LocalStack): boto3 reads them itself, so with none set the code talks to real AWS.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from wikitide.errors import ConfigError

DEFAULT_STACK = "wikitide"
DEFAULT_REGION = "us-east-1"
# How the producer writes to Kinesis: `records` (PutRecords, 500 a call: AWS), `record` (PutRecord calls side by
# side) or `auto` (PutRecords until PutRecord is the cheaper per entry: kinesis-mock, whose PutRecords slows down
# as the stream grows; see producer/kinesis_writer.py).
KINESIS_PUT_APIS = ("records", "record", "auto")
# Where the processes publish their own metrics: `off`, or `cloudwatch` (PutMetricData, batched, from a background
# thread; the local stack points it at moto with AWS_ENDPOINT_URL_CLOUDWATCH). Off unless asked for, so a test or
# a tool that runs a process without a CloudWatch of its own never sends to AWS.
METRICS_SINKS = ("off", "cloudwatch")


@dataclass(frozen=True)
class Settings:
    stack_name: str
    region: str
    redis_url: str | None
    kinesis_endpoint: str | None
    dynamodb_endpoint: str | None
    contact: str
    fast_retries: bool = False
    # Record every processed record's (shard, sequence) in Redis, in processing order (kcl_app.progress).
    kcl_journal: bool = False
    kinesis_put: str = "records"
    # Pack events into aggregated Kinesis records (`wikitide.aggregation`); `WIKITIDE_KINESIS_AGGREGATE=off`: one each.
    kinesis_aggregate: bool = True
    # How long the API reuses its dependency checks for `/health` (0: check on every call).
    health_cache_seconds: float = 5.0
    # How long each API process reuses a read endpoint's whole answer for the same URL (0: never).
    answer_cache_seconds: float = 1.0
    redis_password: str | None = field(default=None, repr=False)
    redis_ca_file: str | None = None
    cloudformation_endpoint: str | None = None
    # The bearer token of the API's control endpoints (ECS injects it from Secrets Manager); unset: control is off.
    control_token: str | None = field(default=None, repr=False)
    # Per-client rate limits of the API (flask-limiter notation, e.g. `100/second;2000/minute`; `off` for none).
    rate_limit_queries: str = "100/second"
    rate_limit_stream: str = "30/minute"
    rate_limit_control: str = "60/minute"
    # Proxies in front of the API whose X-Forwarded-For is trusted (the ALB: 1); 0 reads the peer's address.
    trusted_proxies: int = 0
    metrics: str = "off"
    # Seconds between two publishes of the metrics (CloudWatch's standard resolution is a minute).
    metrics_interval: float = 60.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        shared = env.get("AWS_ENDPOINT_URL") or None
        return cls(
            stack_name=env.get("WIKITIDE_STACK", DEFAULT_STACK),
            region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or DEFAULT_REGION,
            redis_url=env.get("REDIS_URL") or None,
            kinesis_endpoint=env.get("AWS_ENDPOINT_URL_KINESIS") or shared,
            dynamodb_endpoint=env.get("AWS_ENDPOINT_URL_DYNAMODB") or shared,
            contact=env.get("WIKITIDE_CONTACT", ""),
            fast_retries=env.get("WIKITIDE_FAST_RETRIES") == "1",
            kcl_journal=env.get("WIKITIDE_KCL_JOURNAL") == "1",
            kinesis_put=_choice(env, "WIKITIDE_KINESIS_PUT", KINESIS_PUT_APIS),
            kinesis_aggregate=_choice(env, "WIKITIDE_KINESIS_AGGREGATE", ("on", "off")) == "on",
            health_cache_seconds=_seconds(env, "WIKITIDE_HEALTH_CACHE_SECONDS", 5.0),
            answer_cache_seconds=_seconds(env, "WIKITIDE_ANSWER_CACHE_SECONDS", 1.0),
            redis_password=env.get("REDIS_PASSWORD") or None,
            redis_ca_file=env.get("REDIS_TLS_CA_FILE") or None,
            cloudformation_endpoint=env.get("AWS_ENDPOINT_URL_CLOUDFORMATION") or shared,
            control_token=env.get("WIKITIDE_CONTROL_TOKEN") or None,
            rate_limit_queries=_rate(env, "WIKITIDE_RATE_LIMIT_QUERIES", "100/second"),
            rate_limit_stream=_rate(env, "WIKITIDE_RATE_LIMIT_STREAM", "30/minute"),
            rate_limit_control=_rate(env, "WIKITIDE_RATE_LIMIT_CONTROL", "60/minute"),
            trusted_proxies=_count(env, "WIKITIDE_TRUSTED_PROXIES", 0, 5),
            metrics=_choice(env, "WIKITIDE_METRICS", METRICS_SINKS),
            metrics_interval=max(1.0, _seconds(env, "WIKITIDE_METRICS_INTERVAL", 60.0)),
        )

    def require_redis_url(self) -> str:
        if not self.redis_url:
            raise ConfigError("REDIS_URL is not set (e.g. redis://127.0.0.1:6380/0, or your ElastiCache endpoint)")
        return self.redis_url


def _choice(env: Mapping[str, str], name: str, choices: tuple[str, ...]) -> str:
    """The variable's value, one of `choices` (the first when unset)."""
    value = env.get(name) or choices[0]
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}; got {value!r}")
    return value


def _seconds(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 3600:
        raise ConfigError(f"{name} must be a number of seconds from 0 to 3600, got {raw!r}")
    return value


_RATE = re.compile(r"\d{1,9}\s*(/|per)\s*\d{0,6}\s*(second|minute|hour|day)s?", re.IGNORECASE)


def _rate(env: Mapping[str, str], name: str, default: str) -> str:
    """A rate limit in flask-limiter's notation (`10/second`, several joined by `;`), or `off`."""
    value = (env.get(name) or default).strip()
    if value != "off" and not all(_RATE.fullmatch(part.strip()) for part in value.split(";")):
        raise ConfigError(f"{name} must be a rate such as 100/second or 30/minute (several joined by ;) or off, "
                          f"got {value!r}")
    return value


def _count(env: Mapping[str, str], name: str, default: int, maximum: int) -> int:
    raw = env.get(name) or str(default)
    if not raw.isascii() or not raw.isdigit() or int(raw) > maximum:
        raise ConfigError(f"{name} must be an integer from 0 to {maximum}, got {raw!r}")
    return int(raw)
