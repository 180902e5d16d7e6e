"""One frozen settings object per process, read from the environment at the entrypoint and nowhere else.

Redis: `REDIS_URL` (`rediss://host:port/0` for TLS, as ElastiCache with encryption in transit needs), the AUTH
password apart in `REDIS_PASSWORD` (ECS injects it from Secrets Manager; a password inside the URL works too),
and `REDIS_TLS_CA_FILE` when the server's certificate is not signed by a CA the system trusts (a test's own).

Endpoints follow the AWS SDK's own variables (`AWS_ENDPOINT_URL_KINESIS`, `AWS_ENDPOINT_URL_DYNAMODB`, ...,
or `AWS_ENDPOINT_URL` for LocalStack): boto3 reads them itself, so with none set the code talks to real AWS.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from wikitide.errors import ConfigError

DEFAULT_STACK = "wikitide"
DEFAULT_REGION = "us-east-1"


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
    redis_password: str | None = field(default=None, repr=False)
    redis_ca_file: str | None = None
    cloudformation_endpoint: str | None = None

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
            redis_password=env.get("REDIS_PASSWORD") or None,
            redis_ca_file=env.get("REDIS_TLS_CA_FILE") or None,
            cloudformation_endpoint=env.get("AWS_ENDPOINT_URL_CLOUDFORMATION") or shared,
        )

    def require_redis_url(self) -> str:
        if not self.redis_url:
            raise ConfigError("REDIS_URL is not set (e.g. redis://127.0.0.1:6380/0, or your ElastiCache endpoint)")
        return self.redis_url
