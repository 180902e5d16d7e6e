"""The monthly bill of one deployment at a given event rate: pure arithmetic over three inputs.

- the price table (`prices.json`: list prices of one region, with the date and source);
- the per-event quantities that `benchmarks/cost_per_event.py` counted at the live mix (`measured.json`: DynamoDB
  write units per distinct event in the tables and in their global secondary indexes, read units, bytes per Kinesis
  record, stored bytes per event in the events table and its indexes, the processor's log bytes per batch), taken
  from the measured scenario nearest the rate;
- the deployment's shape, from the templates' defaults (`Shape`), and the KCL's polling from
  `properties/aws.properties`.

Every line says how its quantity was found, so a figure can be traced to a measurement, a template or a price.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from wikitide.scaling.shards import ShardPolicy

SECONDS_PER_HOUR = 3600
GIB = 1024**3
MIB = 1024**2
# Producer and API metric names besides the processor's (which the benchmark lists); tests/unit/test_cost.py checks
# them against what the components record.
PRODUCER_METRICS = ("EventsRead", "EventsWritten", "EventsRejected", "Gaps", "MissedOffsets", "BacklogEntries",
                    "BacklogBytes", "PutThrottles", "PutRecordsLatency", "MetricsDropped")
API_METRICS = ("Requests", "Latency", "Status4xx", "Status5xx", "FallbackReads", "MetricsDropped")


@dataclass(frozen=True)
class Shape:
    """The deployment, from the templates' defaults (cloudformation/*.yaml) and properties/aws.properties."""

    min_shards: int = 2  # wikitide.yaml ShardCount
    shard_target_utilisation: float = ShardPolicy().target  # what the shard scaler keeps each shard at
    min_workers: int = 2  # compute.yaml KclWorkers
    shards_per_worker: int = 2  # an assumption: the local stack cannot run 3,000 events/s to measure it
    worker_vcpu: float = 1.0  # compute.yaml KclTask
    worker_gb: float = 2.0
    producer_vcpu: float = 0.25
    producer_gb: float = 0.5
    api_tasks: int = 2
    api_vcpu: float = 0.5
    api_gb: float = 1.0
    api_processes_per_task: int = 4  # gunicorn workers, each publishing its metrics
    cache_nodes: int = 2  # cache.yaml NumCacheClusters (primary and replica)
    cache_node_type: str = "cache.t4g.small"
    polls_per_second: float = 2.0  # idleTimeBetweenReadsInMillis = 500
    lease_renewals_per_second: float = 0.3  # failoverTimeMillis = 10000: a lease is renewed every third of it
    stream_readers: int = 2  # the KCL fleet and Firehose
    firehose_buffer_seconds: int = 300  # archive.yaml BufferingIntervalSeconds
    firehose_buffer_mib: int = 64
    interface_endpoints: int = 7  # network.yaml: kinesis, ecr.api, ecr.dkr, logs, monitoring, secretsmanager, cfn
    availability_zones: int = 2
    kcl_metrics: int = 20  # SUMMARY per operation: an estimate (moto cannot take the KCL's calls to count them)
    alarm_metrics: int = 17  # monitoring.yaml: 8 single-metric alarms, 6 + 3 metrics in the two math alarms
    dashboards: int = 1
    producer_log_bytes_per_second: float = 20.0  # one stats line of ~200 bytes every 10 s


@dataclass(frozen=True)
class Line:
    component: str
    monthly_usd: float
    quantity: str


@dataclass(frozen=True)
class Estimate:
    events_per_second: float
    region: str
    lines: list[Line]
    per_event: Mapping[str, Any]
    scenario: str
    on_demand_kinesis_usd: float
    provisioned_kinesis_usd: float
    notes: list[str] = field(default_factory=list)

    @property
    def total(self) -> float:
        return sum(line.monthly_usd for line in self.lines)

    @property
    def biggest(self) -> Line:
        return max(self.lines, key=lambda line: line.monthly_usd)


LEVERS = {
    "VPC interface endpoints": "a fixed charge per endpoint and AZ: drop the endpoints a layer can do without "
                               "(CloudFormation, Secrets Manager are used only at start) or share one VPC's "
                               "endpoints between staging and production",
    "DynamoDB requests": "fewer writes per distinct event, in the indexes as much as in the tables: each claim "
                         "is written to the events table's two indexes with its document (indexes that project "
                         "keys only, the document read from the table, would bill a unit each instead of one per "
                         "KB), and each counter cell a batch touches is one request (longer batches share more "
                         "of them)",
    "Fargate": "ARM64 (Graviton) tasks are about 20% cheaper per vCPU-hour, and the KCL workers tolerate Fargate "
               "Spot (a stopped worker's leases move and its batch is redelivered)",
    "ElastiCache": "one node without a replica outside production, or a smaller node once `INFO memory` shows "
                   "the day of counters fits",
    "Kinesis": "ON_DEMAND costs more than a few provisioned shards at a steady rate; keep PROVISIONED with the "
               "shard count that follows traffic",
    "CloudWatch": "fewer custom metrics (drop the KCL's own metrics to NONE: the processors publish "
                  "MillisBehindLatest) and a shorter log retention",
    "Firehose": "Firehose bills each record rounded up to 5 KB, and it de-aggregates the stream's aggregated "
                "records (whether it bills an aggregate or each event AWS does not say: this estimate assumes each "
                "event); archiving from the KCL fleet in batches would bill the real bytes",
    "DynamoDB storage": "a TTL on the events table (it keeps every event forever); the archive keeps them in S3",
    "Load balancer": "a fixed charge: one ALB can front staging and production by host name",
    "S3": "GZIP (the archive's default) and the lifecycle's move to IA and the archive tier",
}


def nearest_scenario(scenarios: Sequence[Mapping[str, Any]], events_per_second: float) -> Mapping[str, Any]:
    """The measured scenario whose rate is nearest on a log scale (per-event figures fall as batches grow)."""
    return min(scenarios, key=lambda s: abs(math.log(float(s["events_per_second"]) / events_per_second)))


def estimate(
    events_per_second: float,
    region: str,
    prices: Mapping[str, Any],
    measured: Mapping[str, Any],
    shape: Shape = Shape(),
) -> Estimate:
    """The monthly estimate per component; raises ValueError for a rate that is not positive or a region that the
    price table does not hold."""
    if not events_per_second > 0:
        raise ValueError("the event rate must be a positive number of events per second")
    regions = prices["regions"]
    if region not in regions:
        raise ValueError(f"no prices for region {region!r} in the price table (it has {', '.join(sorted(regions))})")
    p = regions[region]
    hours = float(prices["hours_per_month"])
    seconds = hours * SECONDS_PER_HOUR
    rate = events_per_second
    events = rate * seconds
    m = nearest_scenario(measured["scenarios"], rate)
    record_bytes = float(m["record_bytes_mean"])

    records_per_second = rate / float(m["events_per_kinesis_record"])
    shards = max(shape.min_shards,
                 math.ceil(rate * record_bytes / (MIB * shape.shard_target_utilisation)),
                 math.ceil(records_per_second / (1000 * shape.shard_target_utilisation)))
    workers = max(shape.min_workers, math.ceil(shards / shape.shards_per_worker))
    batches_per_second = shards * min(shape.polls_per_second, rate / shards)

    provisioned = shards * hours * p["kinesis_shard_hour"] + (
        events * float(m["put_payload_units_per_event"]) * p["kinesis_put_payload_units_per_million"] / 1e6)
    gb_in = events * float(m["kinesis_billed_kb_per_event"]) * 1024 / GIB
    on_demand = (hours * p["kinesis_on_demand_stream_hour"] + gb_in * p["kinesis_on_demand_gb_in"]
                 + gb_in * shape.stream_readers * p["kinesis_on_demand_gb_out"])

    table_write_units = events * float(m["write_units_per_event"])
    index_write_units = events * float(m["index_write_units_per_event"])
    write_units = table_write_units + index_write_units
    read_units = events * float(m["read_units_per_event"])
    lease_writes = shards * seconds * (min(shape.polls_per_second, rate / shards) + shape.lease_renewals_per_second)
    table_gb = events * float(m["stored_bytes_per_event"]) / GIB
    stored_gb = table_gb + events * float(m["index_stored_bytes_per_event"]) / GIB

    def task_cost(vcpu: float, gb: float, count: int) -> float:
        return count * hours * (vcpu * float(p["fargate_vcpu_hour"]) + gb * float(p["fargate_gb_hour"]))

    node_prices = p["elasticache_node_hour"]
    if shape.cache_node_type not in node_prices:
        raise ValueError(f"no price for {shape.cache_node_type}; the table has {', '.join(sorted(node_prices))}")
    archive_gb = events * record_bytes / GIB
    objects = max(seconds / shape.firehose_buffer_seconds, events * record_bytes / (shape.firehose_buffer_mib * MIB))

    processor_metrics = len(set(m["processor_metric_names"]) | {"MetricsDropped"})
    custom_metrics = len(PRODUCER_METRICS) + processor_metrics + len(API_METRICS) + shape.kcl_metrics
    publishers = 1 + shards + shape.api_tasks * shape.api_processes_per_task + workers
    put_metric_calls = publishers * seconds / 60
    log_gb = (batches_per_second * float(m["processor_log_bytes_per_batch"])
              + shape.producer_log_bytes_per_second) * seconds / GIB
    endpoint_gb = events * record_bytes * (1 + shape.stream_readers) / GIB

    lines = [
        Line("Kinesis", provisioned,
             f"{shards} shards (PROVISIONED, sized to {shape.shard_target_utilisation:.0%} of 1 MB/s and 1,000 "
             f"records/s each), {events * float(m['put_payload_units_per_event']) / 1e6:,.1f} M PUT payload units"),
        Line("DynamoDB requests", (write_units + lease_writes) * p["dynamodb_write_units_per_million"] / 1e6
             + read_units * p["dynamodb_read_units_per_million"] / 1e6,
             f"{write_units / 1e6:,.1f} M write units ({index_write_units / 1e6:,.1f} M of them in the "
             f"indexes) and {read_units / 1e6:,.1f} M read units for the events, "
             f"{lease_writes / 1e6:,.1f} M write units of KCL checkpoints and lease renewals"),
        # Point-in-time recovery is billed on the table's own size (global secondary indexes are not backed up).
        Line("DynamoDB storage", stored_gb * p["dynamodb_storage_gb_month"] + table_gb * p["dynamodb_pitr_gb_month"],
             f"{stored_gb:,.1f} GB added this month ({stored_gb - table_gb:,.1f} GB of it in the events table's "
             "indexes; no TTL: every month adds as much), the table's with point-in-time recovery"),
        Line("Fargate", task_cost(shape.producer_vcpu, shape.producer_gb, 1)
             + task_cost(shape.worker_vcpu, shape.worker_gb, workers)
             + task_cost(shape.api_vcpu, shape.api_gb, shape.api_tasks),
             f"producer 1 x {shape.producer_vcpu} vCPU, KCL workers {workers} x {shape.worker_vcpu} vCPU, "
             f"API {shape.api_tasks} x {shape.api_vcpu} vCPU"),
        Line("ElastiCache", shape.cache_nodes * hours * node_prices[shape.cache_node_type],
             f"{shape.cache_nodes} x {shape.cache_node_type}"),
        Line("Firehose", events * float(m["firehose_billed_kb_per_event"]) * 1024 / GIB * p["firehose_gb_ingested"],
             f"{events * float(m['firehose_billed_kb_per_event']) * 1024 / GIB:,.1f} GB billed (each event "
             "rounded up to 5 KB)"),
        Line("S3", archive_gb * p["s3_standard_gb_month"] + objects * p["s3_put_per_thousand"] / 1000,
             f"{archive_gb:,.1f} GB archived this month (before GZIP: an upper bound), {objects:,.0f} objects"),
        Line("CloudWatch", custom_metrics * p["cloudwatch_metric_month"]
             + put_metric_calls * p["cloudwatch_put_metric_data_per_thousand"] / 1000
             + log_gb * (p["cloudwatch_logs_gb_ingested"] + p["cloudwatch_logs_gb_month"])
             + shape.alarm_metrics * p["cloudwatch_alarm_metric_month"]
             + shape.dashboards * p["cloudwatch_dashboard_month"],
             f"{custom_metrics} custom metrics, {put_metric_calls / 1e3:,.0f} k PutMetricData calls, "
             f"{log_gb:,.2f} GB of logs, {shape.alarm_metrics} alarm metrics, {shape.dashboards} dashboard"),
        Line("VPC interface endpoints", shape.interface_endpoints * shape.availability_zones * hours
             * p["interface_endpoint_az_hour"] + endpoint_gb * p["interface_endpoint_gb"],
             f"{shape.interface_endpoints} endpoints x {shape.availability_zones} AZs, {endpoint_gb:,.1f} GB of "
             "Kinesis traffic through them"),
        Line("Load balancer", hours * (p["alb_hour"] + p["alb_lcu_hour"]), "one ALB at its minimum of 1 LCU"),
    ]
    per_event = {
        "dynamodb_write_requests": m["write_requests_per_event"],
        "dynamodb_write_units": m["write_units_per_event"],
        "dynamodb_index_write_units": m["index_write_units_per_event"],
        "dynamodb_read_units": m["read_units_per_event"],
        "event_record_bytes": m["record_bytes_mean"],
        "events_per_kinesis_record": m["events_per_kinesis_record"],
        "put_payload_units": m["put_payload_units_per_event"],
        "firehose_billed_kb": m["firehose_billed_kb_per_event"],
        "stored_bytes": m["stored_bytes_per_event"],
        "index_stored_bytes": m["index_stored_bytes_per_event"],
        "processor_log_bytes_per_batch": m["processor_log_bytes_per_batch"],
        "custom_metrics": custom_metrics,
        "put_metric_data_calls_per_minute": publishers,
    }
    notes = [f"per-event quantities measured {measured['measured']} by {measured['command']} (scenario "
             f"{m['scenario']}: {m['shards']} shards, batches of {m['batch']}, "
             f"{m['distinct_events']:,} distinct events)",
             f"prices of {region} as of {prices['date']}: {prices['source']}",
             "not counted: data transfer out to API clients, KCL daemon logs, the KCL's lease-table reads"]
    return Estimate(rate, region, lines, per_event, str(m["scenario"]), on_demand, provisioned, notes)


def format_estimate(result: Estimate) -> str:
    width = max(len(line.component) for line in result.lines)
    rows = [f"Monthly estimate at {result.events_per_second:,.0f} events/s in {result.region} "
            f"({result.events_per_second * 730 * 3600 / 1e6:,.0f} M events a month)", ""]
    for line in sorted(result.lines, key=lambda line: -line.monthly_usd):
        rows.append(f"  {line.component:<{width}}  ${line.monthly_usd:>10,.2f}  {line.quantity}")
    rows.append(f"  {'total':<{width}}  ${result.total:>10,.2f}")
    rows.append("")
    kinesis_other = ("cheaper" if result.on_demand_kinesis_usd < result.provisioned_kinesis_usd else "dearer")
    rows.append(f"Kinesis ON_DEMAND would cost ${result.on_demand_kinesis_usd:,.2f} ({kinesis_other} than "
                f"PROVISIONED at ${result.provisioned_kinesis_usd:,.2f})")
    biggest = result.biggest
    rows.append(f"Biggest driver: {biggest.component} ({biggest.monthly_usd / result.total:.0%} of the total). "
                f"Lever: {LEVERS[biggest.component]}")
    rows.append("")
    rows.append("Per event (measured at the live mix):")
    rows.extend(f"  {name}: {value:,.2f}" if isinstance(value, float) else f"  {name}: {value}"
                for name, value in result.per_event.items())
    rows.append("")
    rows.extend(f"({note})" for note in result.notes)
    return "\n".join(rows)


def to_dict(result: Estimate) -> dict[str, Any]:
    return {
        "events_per_second": result.events_per_second, "region": result.region,
        "components": [{"component": line.component, "monthly_usd": round(line.monthly_usd, 2),
                        "quantity": line.quantity} for line in result.lines],
        "total_usd": round(result.total, 2),
        "biggest_driver": result.biggest.component, "lever": LEVERS[result.biggest.component],
        "kinesis_on_demand_usd": round(result.on_demand_kinesis_usd, 2),
        "kinesis_provisioned_usd": round(result.provisioned_kinesis_usd, 2),
        "per_event": dict(result.per_event), "scenario": result.scenario, "notes": result.notes,
    }
