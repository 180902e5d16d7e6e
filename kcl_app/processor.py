"""The amazon_kclpy v3 record processor that the MultiLangDaemon starts, one process per shard lease.

Stdout is the daemon's protocol channel: nothing here prints. Logs go to the file named by
WIKITIDE_PROCESSOR_LOG (every line); stderr gets errors only when that file is set, else warnings too
(the daemon logs each stderr line as an ERROR of its own).
"""

from __future__ import annotations

import logging
import os
import sys
import time
from typing import Any

from amazon_kclpy import kcl
from amazon_kclpy.checkpoint_error import CheckpointError
from amazon_kclpy.v3 import processor

from kcl_app.bootstrap import BatchHandler, bootstrap, progress_reporter
from kcl_app.handler import StreamRecord
from wikitide.errors import DependencyUnavailable
from wikitide.settings import Settings

logger = logging.getLogger("kcl_app.processor")

# Exit status asking for redelivery: the daemon shuts down, its supervisor restarts it, and the new
# daemon resumes every shard from its last checkpoint, which is before the batch that failed.
EXIT_REDELIVER = 75
CHECKPOINT_ATTEMPTS = 5


class ChangeProcessor(processor.RecordProcessorBase):  # type: ignore[misc]
    """Processes one shard. Checkpoints a batch only after `handle` made all its effects durable."""

    def __init__(self, handle: BatchHandler, *, checkpoint_backoff: float = 0.5, progress: Any = None) -> None:
        self._handle = handle
        self._progress = progress
        self._backoff = checkpoint_backoff
        self.shard_id = "?"

    def initialize(self, initialize_input: Any) -> None:
        self.shard_id = initialize_input.shard_id
        logger.info("shard %s: starting at %s", self.shard_id, initialize_input.sequence_number)

    def process_records(self, process_records_input: Any) -> None:
        records = process_records_input.records
        if not records:
            return
        batch = [
            StreamRecord(record.binary_data, self.shard_id, int(record.sequence_number), record.timestamp_millis)
            for record in records
        ]
        try:
            outcome = self._handle(batch)
        except DependencyUnavailable as exc:
            logger.error("shard %s: batch of %d not stored, redelivery: %s", self.shard_id, len(records), exc)
            raise SystemExit(EXIT_REDELIVER) from exc
        logger.info(
            "shard %s: %d records, %d claimed, %d duplicates, %d rejected, %d canaries, %d counter cells",
            self.shard_id, len(records), outcome.claimed, outcome.duplicates,
            sum(outcome.rejected.values()), outcome.canaries, outcome.cells,
        )
        if self._progress is not None:
            self._progress.batch_done(self.shard_id, records, process_records_input.millis_behind_latest)
        last = records[-1]
        self._checkpoint(process_records_input.checkpointer, last.sequence_number, last.sub_sequence_number)

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
    kcl.KCLProcess(ChangeProcessor(handle, progress=progress_reporter(settings))).run()


if __name__ == "__main__":
    main()
