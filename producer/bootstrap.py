"""Composition root of the producer process."""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

from producer.kinesis_writer import KinesisWriter
from producer.service import Producer, ProducerStats
from producer.sources import open_source, user_agent
from producer.sse_source import read_events
from wikitide.aws import make_client
from wikitide.settings import Settings
from wikitide.stack import read_outputs

logger = logging.getLogger(__name__)


def run_producer(settings: Settings, source: str, *, speed: float = 1.0, linger: float = 0.25) -> ProducerStats:
    """Run until SIGINT/SIGTERM; then flush what was read and return the tallies."""
    resources = read_outputs(make_client(settings, "cloudformation"), settings.stack_name)
    writer = KinesisWriter(make_client(settings, "kinesis"), resources.stream_name, fast_retries=settings.fast_retries)
    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    with open_source(source, speed=speed) as url:
        logger.info("reading %s into Kinesis stream %s", url, resources.stream_name)
        events = read_events(url, user_agent(settings.contact), should_stop=stop.is_set)
        producer = Producer(events, writer, linger=linger)
        reporter = threading.Thread(target=_report, args=(producer, stop), daemon=True)
        reporter.start()
        stats = producer.run(stop)
    logger.info("stopped: read %d, wrote %d in %d batches, canaries %d, rejected %s",
                stats.read, stats.written, stats.batches, stats.canaries, dict(stats.rejected))
    return stats


def _report(producer: Producer, stop: threading.Event, every: float = 10.0) -> None:
    while not stop.wait(every):
        s = producer.stats
        logger.info("read %d, wrote %d, canaries %d, rejected %s", s.read, s.written, s.canaries, dict(s.rejected))
