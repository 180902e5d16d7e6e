"""Bounded retries with exponential backoff and jitter: one `Policy` per call site, declared once, here.

Every network call has a timeout (connect and read, set on its client) and at most one retry loop: the clients
that a policy below wraps make one attempt each (botocore `max_attempts=1`, redis-py `Retry(NoBackoff(), 0)`),
so attempts never multiply. A policy stops at `attempts` tries or when the next try would start after `deadline`
seconds, whichever comes first; the longest a call site can take is therefore `deadline` plus one attempt's
timeout (`Policy.worst_case`). The README's table lists them.

`set_testing(True)` (stamina's switch is the model) makes every wait a millisecond, for tests; attempts and
deadlines stay as declared, so a test still sees how many tries were made.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from tenacity import (
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    stop_before_delay,
    wait_exponential_jitter,
)

T = TypeVar("T")


@dataclass(frozen=True)
class Policy:
    """At most `attempts` tries of one call site, none started later than `deadline` seconds after the first."""

    name: str
    attempts: int
    deadline: float
    initial: float = 0.1
    max_delay: float = 2.0

    def worst_case(self, attempt_timeout: float) -> float:
        """The longest a call under this policy takes when every try lasts `attempt_timeout` seconds."""
        return self.deadline + attempt_timeout


# Per-attempt timeouts of the clients the policies wrap (seconds). A hung dependency costs one of these per try.
AWS_CONNECT_TIMEOUT = 2.0
# A Scan page or a 25-item batch on a busy emulator took over 5 s (measured at load 15): 10 s, as botocore's own.
AWS_READ_TIMEOUT = 10.0
REDIS_CONNECT_TIMEOUT = 2.0
REDIS_SOCKET_TIMEOUT = 3.0

# The record processor: a batch either completes or exits for redelivery (status 75) within about these bounds.
PROCESSOR_DYNAMODB = Policy("processor DynamoDB writes and reads", attempts=6, deadline=15.0)
PROCESSOR_REDIS = Policy("processor Redis pipelines", attempts=5, deadline=10.0)
# The rebuild of an empty Redis scans the counters in a background thread: no batch waits on it, and a failed
# rebuild is tried again only by the next batch, so it may take longer than a batch's writes.
PROCESSOR_REBUILD_SCAN = Policy("rebuild scan of the counters", attempts=6, deadline=60.0, max_delay=5.0)
# A Scan page competes with the fleet's writes on the same emulator: every try of one timed out at 10 s at load 20.
REBUILD_SCAN_READ_TIMEOUT = 30.0
# The producer keeps events in memory while Kinesis throttles: it can afford to wait longer. A PutRecords of
# 500 records takes seconds on an emulator whose stream has grown (see LOCAL_STACK_FINDINGS): its read
# timeout is longer, so slowness is not turned into a failure (and a resend of records already stored).
PRODUCER_KINESIS = Policy("producer PutRecords", attempts=8, deadline=30.0, max_delay=5.0)
PRODUCER_KINESIS_READ_TIMEOUT = 15.0
# One PutRecord of the lanes that replace PutRecords on kinesis-mock (`producer/kinesis_writer.py`): the same
# patience per record as the batch call it stands in for.
PRODUCER_KINESIS_RECORD = Policy("producer PutRecord", attempts=8, deadline=30.0, max_delay=5.0)
# The producer's map of the stream's open shards (ListShards), read when it starts and when a write lands on a shard
# it does not know (`producer.kinesis_writer.ShardMap`): the events wait meanwhile, as for a PutRecords.
PRODUCER_KINESIS_SHARDS = Policy("producer ListShards", attempts=8, deadline=30.0, max_delay=5.0)
# The local archive forwarder (Kinesis -> Firehose): it holds only what it read since its last checkpoint, so a
# failure past these bounds ends the process and the launcher restarts it from that checkpoint.
ARCHIVE_KINESIS = Policy("archive forwarder Kinesis reads", attempts=6, deadline=20.0, max_delay=5.0)
ARCHIVE_FIREHOSE = Policy("archive forwarder PutRecordBatch", attempts=6, deadline=30.0, max_delay=5.0)
# Archive reads (stats, replay): one object at a time, whole.
ARCHIVE_S3 = Policy("archive S3 reads", attempts=5, deadline=30.0, max_delay=5.0)

_testing = False


def set_testing(testing: bool) -> None:
    """Make every wait of every policy a millisecond (True) or restore the declared backoff (False)."""
    global _testing
    _testing = testing


def is_testing() -> bool:
    return _testing


def bounded(
    call: Callable[[], T],
    *,
    retry_on: tuple[type[BaseException], ...],
    policy: Policy | None = None,
    attempts: int | None = None,
    fast: bool = False,
) -> T:
    """Run `call` under `policy`, retrying on `retry_on`; the last error propagates.

    `attempts` overrides the policy's count (tests of exhaustion); `fast` is `set_testing` for one call.
    """
    policy = policy or Policy("unnamed", attempts=5, deadline=30.0)
    initial, max_delay = policy.initial, policy.max_delay
    if fast or _testing:
        initial, max_delay = 0.001, 0.001
    retrying = Retrying(
        stop=stop_after_attempt(attempts or policy.attempts) | stop_before_delay(policy.deadline),
        wait=wait_exponential_jitter(multiplier=initial, max=max_delay, jitter=initial),
        retry=retry_if_exception_type(retry_on),
        reraise=True,
    )
    return retrying(call)
