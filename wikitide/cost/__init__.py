"""`wikitide cost`: a monthly estimate from the price table (`prices.json`) and the measured per-event quantities
(`measured.json`, written by `benchmarks/cost_per_event.py`); the arithmetic is in `model.py`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((HERE / name).read_text(encoding="utf-8"))
    return data
