"""The amazon_kclpy v3 record processor that the MultiLangDaemon starts, one process per shard lease.

No exception crosses `process_records` unhandled: amazon_kclpy would log it and the next checkpoint would pass the
batch. A record's content never fails a batch (`kcl_app/handler.py` makes it a dead letter); a store that is
unavailable, or anything unforeseen here, exits with `EXIT_REDELIVER` after logging the traceback, and the batch
is delivered again. A batch that kills the process again and again is worked through in smaller runs and, at
last, its fatal record given up (`kcl_app/redelivery.py`).

Stdout is the daemon's protocol channel: nothing here prints. Logs go to the file named by
WIKITIDE_PROCESSOR_LOG (every line); stderr gets errors only when that file is set, else warnings too
(the daemon logs each stderr line as an ERROR of its own).
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable
from typing import Any

import redis
from amazon_kclpy import kcl
from amazon_kclpy.checkpoint_error import CheckpointError
from amazon_kclpy.v3 import processor

from kcl_app.bootstrap import BatchHandler, bootstrap, progress_reporter
from kcl_app.handler import BatchOutcome, StreamRecord, ordinal
from kcl_app.redelivery import DeliveryLog, Plan, RedisDeliveryLog, plan
from wikitide.envelope import event_of
from wikitide.errors import DependencyUnavailable
from wikitide.metrics import NULL_METRICS, Metrics, open_metrics
from wikitide.settings import Settings

logger = logging.getLogger("kcl_app.processor")

# Exit status asking for redelivery: the daemon shuts down, its supervisor restarts it, and the new
# daemon resumes every shard from its last checkpoint, which is before the batch that failed.
EXIT_REDELIVER = 75
CHECKPOINT_ATTEMPTS = 5


class ChangeProcessor(processor.RecordProcessorBase):  # type: ignore[misc]
    """Processes one shard. Checkpoints a batch only after `handle` made all its effects durable."""

    def __init__(
        self,
        handle: BatchHandler,
        *,
        checkpoint_backoff: float = 0.5,
        progress: Any = None,
        deliveries: DeliveryLog | None = None,
        metrics: Metrics = NULL_METRICS,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        """`metrics` receives, per stored batch: RecordsProcessed, EventsClaimed, Duplicates, DeadLetters (counts),
        BatchDuration (ms, from delivery to stored), MillisBehindLatest (the daemon's) and OldestEventAge (ms from
        the `meta.dt` of the batch's oldest claimed event to its processing)."""
        self._handle = handle
        self._metrics = metrics
        self._wall_clock = wall_clock
        for name in ("RecordsProcessed", "EventsClaimed", "Duplicates", "DeadLetters"):
            metrics.count(name, 0)
        self._progress = progress
        self._deliveries = deliveries
        self._backoff = checkpoint_backoff
        self.shard_id = "?"

    def initialize(self, initialize_input: Any) -> None:
        self.shard_id = initialize_input.shard_id
        logger.info("shard %s: starting at %s", self.shard_id, initialize_input.sequence_number)

    def process_records(self, process_records_input: Any) -> None:
        try:
            self._process(process_records_input)
        except SystemExit:
            raise
        except Exception as exc:  # the KCL boundary: anything unforeseen is redelivered, never skipped
            logger.exception("shard %s: batch failed outside the handler, redelivery", self.shard_id)
            raise SystemExit(EXIT_REDELIVER) from exc

    def _process(self, process_records_input: Any) -> None:
        records = process_records_input.records
        if not records:
            return
        started = time.monotonic()
        batch = [
            # The producer's envelope carries the event with its SSE id and receive time (for the archive).
            StreamRecord(event_of(record.binary_data), self.shard_id,
                         ordinal(record.sequence_number, record.sub_sequence_number), record.timestamp_millis)
            for record in records
        ]
        todo = self._plan(batch)
        checkpointer = process_records_input.checkpointer
        try:
            outcome = self._run(todo, batch, records, checkpointer)
        except DependencyUnavailable as exc:
            self._end_delivery()
            logger.error("shard %s: batch of %d not stored, redelivery: %s", self.shard_id, len(records), exc)
            raise SystemExit(EXIT_REDELIVER) from exc
        self._end_delivery()
        logger.info(
            "shard %s: %d records, %d claimed, %d duplicates, %d rejected, %d canaries, %d counter cells",
            self.shard_id, len(records), outcome.claimed, outcome.duplicates,
            sum(outcome.rejected.values()), outcome.canaries, outcome.cells,
        )
        self._measure(outcome, len(records), started, process_records_input.millis_behind_latest)
        if self._progress is not None:
            self._progress.batch_done(self.shard_id, records, process_records_input.millis_behind_latest)
        last = records[-1]
        self._checkpoint(checkpointer, last.sequence_number, last.sub_sequence_number)

    def _measure(self, outcome: BatchOutcome, records: int, started: float, behind: int | None) -> None:
        metrics = self._metrics
        metrics.count("RecordsProcessed", records)
        metrics.count("EventsClaimed", outcome.claimed)
        metrics.count("Duplicates", outcome.duplicates)
        metrics.count("DeadLetters", sum(outcome.rejected.values()))
        metrics.observe("BatchDuration", 1000 * (time.monotonic() - started))
        if behind is not None:
            metrics.observe("MillisBehindLatest", behind)
        if outcome.oldest_event_ms is not None:
            metrics.observe("OldestEventAge", self._wall_clock() * 1000 - outcome.oldest_event_ms)

    def _plan(self, batch: list[StreamRecord]) -> Plan:
        if self._deliveries is None:
            return Plan(False, len(batch))
        delivery = self._deliveries.begin(self.shard_id, batch[0].sequence)
        todo = plan(len(batch), delivery)
        if not todo.is_whole(len(batch)):
            logger.warning("shard %s: batch at %s began %d times before without ending: runs of %d%s",
                           self.shard_id, batch[0].sequence, delivery.deaths, todo.run,
                           ", giving up its first record" if todo.give_up_first else "")
        return todo

    def _end_delivery(self) -> None:
        if self._deliveries is not None:
            self._deliveries.end(self.shard_id)

    def _run(self, todo: Plan, batch: list[StreamRecord], records: list[Any], checkpointer: Any) -> BatchOutcome:
        """The batch as planned: whole, or in runs with a checkpoint after each (the first record given up)."""
        if todo.is_whole(len(batch)):
            return self._handle(batch)
        outcome = BatchOutcome()
        start = 0
        if todo.give_up_first:
            detail = "the processor died every time it processed this record alone"
            outcome.add(self._handle.give_up(batch[0], detail))
            self._checkpoint(checkpointer, records[0].sequence_number, records[0].sub_sequence_number)
            start = 1
        for first in range(start, len(batch), todo.run):
            outcome.add(self._handle(batch[first : first + todo.run]))
            last = records[min(first + todo.run, len(batch)) - 1]
            self._checkpoint(checkpointer, last.sequence_number, last.sub_sequence_number)
        return outcome

    def lease_lost(self, lease_lost_input: Any) -> None:
        logger.info("shard %s: lease lost", self.shard_id)

    def shard_ended(self, shard_ended_input: Any) -> None:
        logger.info("shard %s: ended, checkpointing at shard end", self.shard_id)
        self._checkpoint(shard_ended_input.checkpointer)

    def shutdown_requested(self, shutdown_requested_input: Any) -> None:
        logger.info("shard %s: shutdown requested, final checkpoint", self.shard_id)
        self._checkpoint(shutdown_requested_input.checkpointer)

    def _checkpoint(
        self, checkpointer: Any, sequence_number: str | None = None, sub_sequence: int | None = None
    ) -> None:
        """KCL rules: throttling is retried with backoff; shutdown and invalid state end the attempt."""
        for attempt in range(1, CHECKPOINT_ATTEMPTS + 1):
            try:
                checkpointer.checkpoint(sequence_number, sub_sequence)
                return
            except CheckpointError as exc:
                if exc.value == "ShutdownException":
                    logger.info("shard %s: shutting down, checkpoint skipped", self.shard_id)
                    return
                if exc.value == "InvalidStateException":
                    logger.warning("shard %s: invalid state on checkpoint (lease table?), skipped", self.shard_id)
                    return
                if exc.value == "ThrottlingException" and attempt < CHECKPOINT_ATTEMPTS:
                    time.sleep(self._backoff * 2 ** (attempt - 1))
                    continue
                logger.error("shard %s: checkpoint failed: %s", self.shard_id, exc.value)
                return


def configure_logging() -> None:
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    fmt = logging.Formatter("%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s")
    path = os.environ.get("WIKITIDE_PROCESSOR_LOG")
    stderr = logging.StreamHandler(sys.stderr)
    # The daemon logs every stderr line as an ERROR of its own: with a log file, only errors go there.
    stderr.setLevel(logging.ERROR if path else logging.WARNING)
    stderr.setFormatter(fmt)
    root.addHandler(stderr)
    if path:
        to_file = logging.FileHandler(path)
        to_file.setFormatter(fmt)
        root.addHandler(to_file)
    for noisy in ("botocore", "urllib3", "boto3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def main() -> None:
    configure_logging()
    settings = Settings.from_env()
    handle = bootstrap(settings)
    deliveries = RedisDeliveryLog(
        redis.Redis.from_url(settings.require_redis_url(), socket_timeout=2, socket_connect_timeout=2)
    )
    measuring = open_metrics(settings, "processor")
    try:
        kcl.KCLProcess(ChangeProcessor(handle, progress=progress_reporter(settings), deliveries=deliveries,
                                       metrics=measuring.metrics)).run()
    finally:
        measuring.close()


if __name__ == "__main__":
    main()
