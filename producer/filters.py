"""Source-side filters: which changes go into Kinesis at all. Pure. The default keeps everything."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ChangeFilter:
    wikis: frozenset[str] = frozenset()
    types: frozenset[str] = frozenset()
    namespaces: frozenset[int] = frozenset()
    bots: bool | None = None  # None: both; True: bots only; False: humans only

    def keeps(self, raw: Mapping[str, Any]) -> bool:
        """Whether the change goes to Kinesis. Values of the wrong JSON type never match (and never raise)."""
        if self.wikis and not _is_in(raw.get("wiki"), str, self.wikis):
            return False
        if self.types and not _is_in(raw.get("type"), str, self.types):
            return False
        if self.namespaces and not _is_in(raw.get("namespace"), int, self.namespaces):
            return False
        return self.bots is None or (raw.get("bot") is True) == self.bots

    @property
    def is_everything(self) -> bool:
        return not (self.wikis or self.types or self.namespaces) and self.bots is None


KEEP_ALL = ChangeFilter()


def _is_in(value: object, kind: type, allowed: frozenset[Any]) -> bool:
    # `type(...) is`: a bool is not a namespace, and a list would make `in` raise (unhashable).
    return type(value) is kind and value in allowed
