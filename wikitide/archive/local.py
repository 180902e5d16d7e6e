"""The archive on the local stack: its DirectPut delivery stream, and the forwarder process wired together."""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path
from types import FrameType
from typing import Any

from botocore.exceptions import ClientError

from wikitide.archive.forwarder import FirehoseSink, Forwarder, ForwarderStats, KinesisReader, ShardPositions
from wikitide.archive.layout import ERROR_PREFIX, PREFIX
from wikitide.aws import make_adapter_client
from wikitide.settings import Settings

logger = logging.getLogger(__name__)


def delivery_stream_name(stack_name: str) -> str:
    return f"{stack_name}-archive"


def ensure_delivery_stream(firehose: Any, name: str, bucket: str) -> None:
    """A DirectPut delivery stream writing to `bucket` under the archive's prefixes; idempotent.

    Uncompressed, because moto ignores the setting and the forwarder gzips each object itself."""
    try:
        firehose.create_delivery_stream(
            DeliveryStreamName=name,
            DeliveryStreamType="DirectPut",
            ExtendedS3DestinationConfiguration={
                "RoleARN": "arn:aws:iam::123456789012:role/wikitide-local-archive",
                "BucketARN": f"arn:aws:s3:::{bucket}",
                "Prefix": PREFIX,
                "ErrorOutputPrefix": ERROR_PREFIX,
                "CompressionFormat": "UNCOMPRESSED",
                "BufferingHints": {"IntervalInSeconds": 60, "SizeInMBs": 5},
            },
        )
        logger.info("created Firehose delivery stream %s -> s3://%s/%s", name, bucket, PREFIX)
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "ResourceInUseException":
            raise


def run_forwarder(
    settings: Settings, stream: str, delivery_stream: str, state_dir: Path, *, buffer_seconds: float,
    buffer_bytes: int,
) -> ForwarderStats:
    """Forward until SIGTERM or SIGINT, then deliver what was read and save the positions."""
    kinesis = KinesisReader(make_adapter_client(settings, "kinesis"), stream, fast=settings.fast_retries)
    sink = FirehoseSink(make_adapter_client(settings, "firehose"), delivery_stream, fast=settings.fast_retries)
    state_dir.mkdir(parents=True, exist_ok=True)
    positions = ShardPositions(state_dir / f"archive-positions-{stream}.json", stream, kinesis.created())
    forwarder = Forwarder(kinesis, sink, positions, buffer_seconds=buffer_seconds, buffer_bytes=buffer_bytes)
    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    logger.info("archive: forwarding %s to Firehose %s (buffer %.0f s / %d bytes)", stream, delivery_stream,
                buffer_seconds, buffer_bytes)
    stats = forwarder.run(stop)
    logger.info("archive: stopped after %d records in %d objects", stats.records, stats.objects)
    return stats
