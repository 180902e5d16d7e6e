"""Reading the archive: the objects of a range of receive times, in order, line by line.

An object that is not gzip, or whose gzip stream is cut short, is reported (`Corrupt`, with its key and why) and
skipped whole; every other object is still read. Lines come in a stable order (objects by key, which starts with
the hour and the time Firehose wrote it, then lines in object order), which is what makes a replay's position a
(key, line) pair.
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from wikitide import aws, retry
from wikitide.archive import layout
from wikitide.envelope import MARKER, Opened, open_record


@dataclass(frozen=True, slots=True)
class Corrupt:
    key: str
    reason: str


@dataclass(frozen=True, slots=True)
class Line:
    """One archived record: `data` is the Kinesis record exactly as it was (newline included)."""

    key: str
    index: int
    data: bytes
    opened: Opened


class S3Archive:
    """S3 adapter for the archive bucket: one attempt per call on the client, retries under `retry.ARCHIVE_S3`."""

    def __init__(self, client: Any, bucket: str, *, fast: bool = False) -> None:
        self._client, self._bucket, self._fast = client, bucket, fast

    def keys(self, start: datetime, end: datetime) -> list[str]:
        """Every object key that can hold a record received in [start, end), sorted."""
        found: list[str] = []
        for prefix in layout.hour_prefixes(start, end):
            token: str | None = None
            while True:
                arguments = {"Bucket": self._bucket, "Prefix": prefix}
                if token:
                    arguments["ContinuationToken"] = token
                page = aws.call(lambda a=arguments: self._client.list_objects_v2(**a),  # type: ignore[misc]
                                what=f"ListObjectsV2 s3://{self._bucket}/{prefix}", policy=retry.ARCHIVE_S3,
                                fast=self._fast)
                found.extend(item["Key"] for item in page.get("Contents", []))
                token = page.get("NextContinuationToken")
                if not token:
                    break
        return sorted(found)

    def read(self, key: str) -> bytes:
        def attempt() -> bytes:
            return bytes(self._client.get_object(Bucket=self._bucket, Key=key)["Body"].read())

        return aws.call(attempt, what=f"GetObject s3://{self._bucket}/{key}", policy=retry.ARCHIVE_S3, fast=self._fast)


def lines_of(key: str, body: bytes) -> list[bytes] | Corrupt:
    """The object's lines (each with its newline), or why it cannot be read. Gzip, or uncompressed when the
    delivery stream's `CompressionFormat` is UNCOMPRESSED (the object then starts with an envelope)."""
    if body.startswith(MARKER):
        text = body
    else:
        try:
            text = gzip.decompress(body)
        except (OSError, EOFError, zlib.error) as exc:
            return Corrupt(key, f"{type(exc).__name__}: {exc}")
    return [line + b"\n" for line in text.split(b"\n") if line]


def received_at(line: Line) -> int | None:
    """The line's receive time (ms), or the time its object was written for a record without an envelope."""
    if line.opened.received_ms is not None:
        return line.opened.received_ms
    written = layout.written_at(line.key)
    return int(written.timestamp() * 1000) if written else None


def read_range(
    archive: S3Archive, start: datetime, end: datetime, on_corrupt: Callable[[Corrupt], None],
    *, after: tuple[str, int] | None = None, written_before: datetime | None = None,
) -> Iterator[Line]:
    """Every line received in [start, end), in archive order, from past `after` (a key and line index) on, in
    objects written before `written_before` (when given)."""
    for key in archive.keys(start, end):
        if after is not None and key < after[0]:
            continue
        written = layout.written_at(key)
        if written_before is not None and written is not None and written > written_before:
            continue
        lines = lines_of(key, archive.read(key))
        if isinstance(lines, Corrupt):
            on_corrupt(lines)
            continue
        for index, data in enumerate(lines):
            if after is not None and key == after[0] and index <= after[1]:
                continue
            line = Line(key, index, data, open_record(data))
            at = received_at(line)
            if at is not None and layout.is_within(at, start, end):
                yield line
