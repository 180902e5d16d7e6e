"""Shared fixtures: the real local services (kinesis-mock, moto, redis-server) on free ports, once per session."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

RECENTCHANGE = Path(__file__).resolve().parents[2] / "shared" / "data" / "recentchange"


@pytest.fixture(scope="session")
def local_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """kinesis-mock, moto and redis-server, started by the project's own launcher; the endpoints go into the
    environment as the AWS SDK variables, exactly as the pipeline's processes get them."""
    from wikitide.localstack.launcher import LocalStack
    from wikitide.localstack.services import Ports, free_port

    ports = Ports(
        kinesis=free_port(), kinesis_tls=free_port(), moto=free_port(), redis=free_port(), api=free_port()
    )
    stack = LocalStack(state_dir=tmp_path_factory.mktemp("local-stack"), ports=ports, stack_name="wt-tests")
    stack.start_infrastructure()
    saved = {k: os.environ.get(k) for k in stack.env}
    os.environ.update(stack.env)
    try:
        yield stack
    finally:
        stack.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture
def redis_url(local_stack: object) -> str:
    """A real, empty redis-server database."""
    url: str = local_stack.env["REDIS_URL"]  # type: ignore[attr-defined]
    redis.Redis.from_url(url).flushdb()
    return url


@pytest.fixture
def provisioned(local_stack: object) -> object:
    """The CloudFormation template deployed under a fresh stack name: its own stream, tables and bucket."""
    from wikitide import stack
    from wikitide.aws import make_client
    from wikitide.settings import Settings

    settings = Settings.from_env()
    name = f"wt-{uuid.uuid4().hex[:10]}"
    return stack.deploy_local(make_client(settings, "cloudformation"), make_client(settings, "kinesis"), name)
