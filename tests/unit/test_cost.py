"""`wikitide cost`: the arithmetic against figures worked out here by hand from the same tables, the choice of the
measured scenario, clear errors, and the metric names it counts against what the components record."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from tests.unit.test_monitoring_template import _published
from wikitide.cost import load
from wikitide.cost.model import API_METRICS, LEVERS, PRODUCER_METRICS, estimate, format_estimate, nearest_scenario

REPO = Path(__file__).resolve().parents[2]
PRICES = load("prices.json")
MEASURED = load("measured.json")


def test_the_price_table_and_the_measurement_say_where_they_come_from() -> None:
    assert PRICES["date"] and "aws.amazon.com" in PRICES["source"]
    assert MEASURED["measured"] and MEASURED["command"] == "benchmarks/cost_per_event.py"
    live = nearest_scenario(MEASURED["scenarios"], 30)
    assert live["scenario"] == "live" and live["distinct_events"] == 1950


def test_kinesis_and_dynamodb_lines_follow_from_the_tables() -> None:
    result = estimate(30, "us-east-1", PRICES, MEASURED)
    lines = {line.component: line.monthly_usd for line in result.lines}
    p = PRICES["regions"]["us-east-1"]
    live = nearest_scenario(MEASURED["scenarios"], 30)
    events = 30 * 730 * 3600
    # 30 events/s of ~1.2 KB need far less than a shard: the template's 2 shards.
    assert lines["Kinesis"] == pytest.approx(2 * 730 * p["kinesis_shard_hour"]
                                             + events * live["put_payload_units_per_event"] * 0.014 / 1e6)
    lease_writes = 2 * 730 * 3600 * (2.0 + 0.3)
    assert lines["DynamoDB requests"] == pytest.approx(
        (events * (live["write_units_per_event"] + live["index_write_units_per_event"]) + lease_writes)
        * p["dynamodb_write_units_per_million"] / 1e6
        + events * live["read_units_per_event"] * p["dynamodb_read_units_per_million"] / 1e6)
    # Storage: the table and its indexes; point-in-time recovery on the table's own size only.
    table_gb = events * live["stored_bytes_per_event"] / 1024**3
    index_gb = events * live["index_stored_bytes_per_event"] / 1024**3
    assert lines["DynamoDB storage"] == pytest.approx(
        (table_gb + index_gb) * p["dynamodb_storage_gb_month"] + table_gb * p["dynamodb_pitr_gb_month"])
    assert result.total == pytest.approx(sum(lines.values()))
    assert result.biggest.monthly_usd == max(lines.values())
    assert set(lines) <= set(LEVERS)


def test_shards_and_the_bill_grow_with_the_rate() -> None:
    low = estimate(30, "us-east-1", PRICES, MEASURED)
    high = estimate(3000, "us-east-1", PRICES, MEASURED)
    assert high.total > 10 * low.total
    busy = nearest_scenario(MEASURED["scenarios"], 3000)
    records_per_second = 3000 / busy["events_per_kinesis_record"]
    shards = max(2, math.ceil(3000 * busy["record_bytes_mean"] / (1024**2 * 0.4)), math.ceil(records_per_second / 400))
    assert f"{shards} shards" in next(line.quantity for line in high.lines if line.component == "Kinesis")


def test_a_bad_rate_or_an_unknown_region_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="positive"):
        estimate(0, "us-east-1", PRICES, MEASURED)
    with pytest.raises(ValueError, match="us-east-1"):
        estimate(30, "mars-north-1", PRICES, MEASURED)
    answer = subprocess.run([sys.executable, "-m", "wikitide", "cost", "--events-per-second", "30", "--region",
                             "mars-north-1"], cwd=REPO, capture_output=True, text=True, timeout=60, check=False,
                            env={"PATH": "/usr/bin:/bin", "WIKITIDE_STATE_DIR": str(REPO / ".no-state")})
    assert answer.returncode == 2 and "mars-north-1" in answer.stderr and "Traceback" not in answer.stderr


def test_the_command_prints_the_estimate_and_its_json() -> None:
    env = {"PATH": "/usr/bin:/bin", "WIKITIDE_STATE_DIR": str(REPO / ".no-state")}
    text = subprocess.run([sys.executable, "-m", "wikitide", "cost", "--events-per-second", "30"], cwd=REPO,
                          capture_output=True, text=True, timeout=60, check=True, env=env).stdout
    assert "Biggest driver:" in text and "Lever:" in text and "dynamodb_write_requests" in text
    data = json.loads(subprocess.run([sys.executable, "-m", "wikitide", "cost", "--events-per-second", "30", "--json"],
                                     cwd=REPO, capture_output=True, text=True, timeout=60, check=True, env=env).stdout)
    assert data["total_usd"] == pytest.approx(sum(c["monthly_usd"] for c in data["components"]), abs=0.05)
    assert format_estimate(estimate(30, "us-east-1", PRICES, MEASURED)).count("$") >= 11


def test_the_metric_names_it_prices_are_the_ones_the_components_record() -> None:
    published = _published()
    assert set(PRODUCER_METRICS) == published["producer"]
    assert set(API_METRICS) == published["api"]
