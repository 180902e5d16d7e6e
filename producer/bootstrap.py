"""Composition root of the producer process."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Iterator
from datetime import datetime
from types import FrameType

from producer.backfill import BackfillWindow
from producer.filters import KEEP_ALL, ChangeFilter
from producer.kinesis_writer import make_writer, put_api_of
from producer.positions import PositionStore
from producer.service import Producer, ProducerStats
from producer.since import cold_start_gap
from producer.sources import open_source, user_agent
from producer.sse_source import SourceEvent, read_events
from wikitide import retry
from wikitide.aws import make_adapter_client, make_client
from wikitide.errors import DependencyUnavailable
from wikitide.metrics import open_metrics
from wikitide.producer_control import POLL_SECONDS, ProducerControl
from wikitide.settings import Settings
from wikitide.stack import read_outputs

logger = logging.getLogger(__name__)


def run_producer(
    settings: Settings,
    source: str,
    *,
    speed: float = 1.0,
    linger: float = 0.25,
    since: datetime | None = None,
    keep: ChangeFilter = KEEP_ALL,
) -> ProducerStats:
    """Run until SIGINT/SIGTERM; then flush what was read, save the position and return the tallies.

    On start it resumes from the position saved for `source`; `since` applies only when there is none.
    """
    resources = read_outputs(make_client(settings, "cloudformation"), settings.stack_name)
    kinesis = make_adapter_client(settings, "kinesis", read_timeout=retry.PRODUCER_KINESIS_READ_TIMEOUT)
    measuring = open_metrics(settings, "producer")
    writer = make_writer(kinesis, resources.stream_name, put_api_of(settings.kinesis_put),
                         aggregate=settings.kinesis_aggregate, fast_retries=settings.fast_retries,
                         metrics=measuring.metrics)
    dynamodb = make_adapter_client(settings, "dynamodb")
    positions = PositionStore(dynamodb, resources.producer_state_table, source, fast_retries=settings.fast_retries)
    checkpoint = positions.load()
    resume_from = checkpoint.last_event_id
    stop = threading.Event()
    control = ProducerControl(dynamodb, resources.producer_state_table, fast_retries=settings.fast_retries)
    paused = threading.Event()
    _read_pause(control, paused)  # a producer started while paused stays paused
    threading.Thread(target=_watch_pause, args=(control, paused, stop), name="pause-watch", daemon=True).start()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    try:
        with open_source(source, speed=speed) as url:
            if resume_from:
                logger.info("resuming %s after Last-Event-ID %s", source, resume_from)
            elif since:
                logger.info("cold start of %s since %s", source, since.isoformat())
            events = read_events(url, user_agent(settings.contact), last_event_id=resume_from,
                                 since=None if resume_from else since, should_stop=stop.is_set,
                                 should_pause=paused.is_set)
            if since and not resume_from:
                events = _reporting_cold_start_gap(events, since)
            producer = Producer(events, writer, linger=linger, keep=keep, checkpoint=checkpoint,
                                on_flushed=positions.save, metrics=measuring.metrics)
            reporter = threading.Thread(target=_report, args=(producer, stop), daemon=True)
            reporter.start()
            stats = producer.run(stop)
    finally:
        writer.close()
        measuring.close()
    logger.info("stopped: read %d, wrote %d in %d calls, skipped %s, rejected %s, cut to fit %d, gaps %d"
                " (%d offsets missed), position %s", stats.read, stats.written, stats.batches, dict(stats.skipped),
                dict(stats.rejected), stats.truncated, stats.gaps, stats.missed, stats.last_id)
    return stats


def run_backfill(
    settings: Settings,
    source: str,
    since: datetime,
    until: datetime,
    *,
    linger: float = 0.25,
    keep: ChangeFilter = KEEP_ALL,
) -> tuple[BackfillWindow, ProducerStats]:
    """Read `source` from `since=` up to the first event past `until` and write it into the stack's stream through
    the producer's own path (parsing, envelope, per-page order, `WIKITIDE_KINESIS_PUT`'s writer). The live
    producer's saved position is neither read nor moved. SIGINT/SIGTERM flush what was read and stop."""
    resources = read_outputs(make_client(settings, "cloudformation"), settings.stack_name)
    kinesis = make_adapter_client(settings, "kinesis", read_timeout=retry.PRODUCER_KINESIS_READ_TIMEOUT)
    writer = make_writer(kinesis, resources.stream_name, put_api_of(settings.kinesis_put),
                         aggregate=settings.kinesis_aggregate, fast_retries=settings.fast_retries)
    window = BackfillWindow(since, until)
    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    try:
        with open_source(source, speed=0.0) as url:
            logger.info("backfill of %s from since=%s to %s into %s", source, since.isoformat(), until.isoformat(),
                        resources.stream_name)
            events = read_events(url, user_agent(settings.contact), since=since, should_stop=stop.is_set)
            producer = Producer(window.bound(events), writer, linger=linger, keep=keep)
            stats = producer.run(stop)
    finally:
        writer.close()
    return window, stats


def _read_pause(control: ProducerControl, paused: threading.Event) -> None:
    """Follow the control item's pause flag; when it cannot be read the producer keeps its current state."""
    try:
        is_paused = control.is_paused()
    except DependencyUnavailable as exc:
        logger.warning("the pause flag could not be read (%s); staying %s", exc, "paused" if paused.is_set() else
                       "running")
        return
    if is_paused and not paused.is_set():
        logger.warning("pause requested by the control endpoint")
        paused.set()
    elif not is_paused and paused.is_set():
        logger.warning("resume requested by the control endpoint: reconnecting after the last event read")
        paused.clear()


def _watch_pause(control: ProducerControl, paused: threading.Event, stop: threading.Event) -> None:
    while not stop.wait(POLL_SECONDS):
        _read_pause(control, paused)


def _reporting_cold_start_gap(events: Iterator[SourceEvent], since: datetime) -> Iterator[SourceEvent]:
    first = next(events, None)
    if first is None:
        return
    gap = cold_start_gap(since, first.data)
    if gap is not None:
        logger.warning("GAP: asked for events since %s but the stream starts %s later (older than its retention);"
                       " %s of history is missing", since.isoformat(), gap, gap)
    yield first
    yield from events


def _report(producer: Producer, stop: threading.Event, every: float = 10.0) -> None:
    while not stop.wait(every):
        s = producer.stats
        logger.info("read %d, wrote %d, skipped %s, rejected %s, cut to fit %d, gaps %d (%d offsets missed)",
                    s.read, s.written, dict(s.skipped), dict(s.rejected), s.truncated, s.gaps, s.missed)
