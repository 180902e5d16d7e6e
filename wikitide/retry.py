"""Bounded retries with exponential backoff and jitter, declared once per adapter call that can fail transiently."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential_jitter

T = TypeVar("T")


def bounded(
    call: Callable[[], T],
    *,
    retry_on: tuple[type[BaseException], ...],
    attempts: int = 5,
    initial: float = 0.1,
    max_delay: float = 5.0,
    fast: bool = False,
) -> T:
    """Run `call`, retrying on `retry_on` at most `attempts` times in all; the last error propagates.

    `fast` shrinks every wait to a millisecond, for tests.
    """
    if fast:
        initial, max_delay = 0.001, 0.001
    waits = wait_exponential_jitter(multiplier=initial, max=max_delay, jitter=initial)
    retrying = Retrying(
        stop=stop_after_attempt(attempts),
        wait=waits,
        retry=retry_if_exception_type(retry_on),
        reraise=True,
    )
    return retrying(call)
