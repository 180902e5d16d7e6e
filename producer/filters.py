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
        if self.wikis and raw.get("wiki") not in self.wikis:
            return False
        if self.types and str(raw.get("type")) not in self.types:
            return False
        if self.namespaces and raw.get("namespace") not in self.namespaces:
            return False
        return self.bots is None or (raw.get("bot") is True) == self.bots

    @property
    def is_everything(self) -> bool:
        return not (self.wikis or self.types or self.namespaces) and self.bots is None


KEEP_ALL = ChangeFilter()
