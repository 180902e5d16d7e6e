"""The `wikitide` command: the local stack, the producer, the KCL worker, the API, and recordings."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
from datetime import datetime
from pathlib import Path
from types import FrameType

import click

from wikitide.errors import WikitideError
from wikitide.settings import Settings

DEFAULT_STATE = Path(".wikitide")
STATE_ENV = "WIKITIDE_STATE_DIR"
# Said when no stack answers: the local one is found by itself while it runs, AWS needs credentials.
NO_STACK_HINT = ("start the local stack with `make up` (commands in another shell then find it by themselves) or "
                 "point at AWS with credentials and AWS_REGION")


# How each WIKITIDE_KINESIS_PUT value writes, for the commands that say so.
WRITE_PATHS = {"records": "PutRecords", "record": "PutRecord lanes", "auto": "PutRecords or PutRecord lanes (auto)"}


def _logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for noisy in ("botocore", "urllib3", "boto3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


@click.group()
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
@click.pass_context
def cli(ctx: click.Context, verbose: bool) -> None:
    """wikitide: Wikipedia recent changes, EventStreams -> Kinesis -> KCL -> DynamoDB + Redis -> API.

    Without endpoints of its own (AWS_ENDPOINT_URL*, WIKITIDE_STACK), a command uses the local stack that
    `make up` runs, if one runs (found in $WIKITIDE_STATE_DIR, default .wikitide); else AWS.
    """
    _logging(verbose)
    if ctx.invoked_subcommand != "local":
        _use_running_local_stack()


def _state_dir() -> Path:
    return Path(os.environ.get(STATE_ENV) or DEFAULT_STATE)


def _use_running_local_stack() -> None:
    from wikitide.localstack import registry

    if registry.chose_own_target(os.environ):
        return
    running = registry.running(_state_dir())
    if running is not None:
        os.environ.update(running.env)
        logging.getLogger("wikitide").debug("using the local stack registered in %s", running.path)


@cli.group()
def local() -> None:
    """The embedded local stack (kinesis-mock, moto server, redis-server)."""


@local.command("env")
def local_env() -> None:
    """Print the running local stack's variables as shell exports: `eval "$(wikitide local env)"`, then the AWS
    CLI and other tools reach the local emulators too."""
    from wikitide.localstack import registry

    running = registry.running(_state_dir())
    if running is None:
        raise click.ClickException(f"no local stack is running (none registered in {_state_dir()}); {NO_STACK_HINT}")
    click.echo(registry.shell_exports(running), nl=False)


@local.command("up")
@click.option("--source", default="live", show_default=True, help="live | sse:URL | replay:PATH | synthetic")
@click.option("--speed", default=1.0, show_default=True, help="Replay speed (0 = as fast as possible).")
@click.option("--workers", default=1, show_default=True, help="KCL MultiLangDaemon workers to start.")
@click.option("--properties", type=click.Path(path_type=Path), default=Path("properties/local.properties"),
              show_default=True)
@click.option("--state-dir", type=click.Path(path_type=Path), default=DEFAULT_STATE, show_default=True,
              envvar=STATE_ENV)
@click.option("--kinesis-port", default=4568, show_default=True)
@click.option("--kinesis-tls-port", default=4567, show_default=True)
@click.option("--moto-port", default=5005, show_default=True)
@click.option("--redis-port", default=6380, show_default=True)
@click.option("--api-port", default=8000, show_default=True)
@click.option("--archive-buffer-seconds", default=60.0, show_default=True,
              help="How often the archive forwarder delivers an object (Firehose's buffering interval).")
def local_up(source: str, speed: float, workers: int, properties: Path, state_dir: Path, kinesis_port: int,
             kinesis_tls_port: int, moto_port: int, redis_port: int, api_port: int,
             archive_buffer_seconds: float) -> None:
    """Start the local stack and the whole pipeline in the foreground; Ctrl-C stops every process."""
    from producer.sources import user_agent
    from wikitide.localstack.launcher import run_local
    from wikitide.localstack.services import Ports

    ports = Ports(kinesis=kinesis_port, kinesis_tls=kinesis_tls_port, moto=moto_port, redis=redis_port, api=api_port)
    run_local(state_dir.resolve(), ports, source=source, speed=speed, workers=workers,
              properties=properties.resolve(), user_agent=user_agent(Settings.from_env().contact),
              archive_buffer_seconds=archive_buffer_seconds)


@cli.command()
@click.option("--source", default="live", show_default=True, help="live | sse:URL | replay:PATH | synthetic")
@click.option("--speed", default=1.0, show_default=True, help="Replay speed (0 = as fast as possible).")
@click.option("--linger", default=0.25, show_default=True, help="Seconds a record may wait for its batch.")
@click.option("--since", default=None, help="Cold start only: ISO time or duration (15m, 1h, 2d) to start from.")
@click.option("--wiki", "wikis", multiple=True, help="Keep only these wikis (repeatable), e.g. enwiki.")
@click.option("--type", "types", multiple=True, help="Keep only these types (repeatable): edit, new, log, ...")
@click.option("--namespace", "namespaces", multiple=True, type=int, help="Keep only these namespaces (repeatable).")
@click.option("--editors", type=click.Choice(["all", "bots", "humans"]), default="all", show_default=True)
def produce(source: str, speed: float, linger: float, since: str | None, wikis: tuple[str, ...],
            types: tuple[str, ...], namespaces: tuple[int, ...], editors: str) -> None:
    """Read the source and write every change into the stack's Kinesis stream, resuming where it stopped."""
    from datetime import UTC, datetime

    from producer.bootstrap import run_producer
    from producer.filters import ChangeFilter
    from producer.since import parse_since

    keep = ChangeFilter(
        wikis=frozenset(wikis), types=frozenset(types), namespaces=frozenset(namespaces),
        bots={"all": None, "bots": True, "humans": False}[editors],
    )
    start = parse_since(since, datetime.now(UTC)) if since else None
    run_producer(Settings.from_env(), source, speed=speed, linger=linger, since=start, keep=keep)


@cli.command()
@click.option("--since", required=True, help="Where the gap starts: ISO time or a duration ago (15m, 1h, 2d); "
              "`wikitide producer-status` shows the last gap's times (last_gap.last_dt .. next_dt).")
@click.option("--until", default=None, help="Where the gap ends: ISO time or a duration ago (default: now).")
@click.option("--source", default="live", show_default=True, help="live | sse:URL | replay:PATH")
@click.option("--linger", default=0.25, show_default=True, help="Seconds a record may wait for its batch.")
def backfill(since: str, until: str | None, source: str, linger: float) -> None:
    """Fill a gap the producer reported: read the source again from `since=` (EventStreams keeps a limited
    history) through the producer's own path into the stack's stream, up to the first event past --until.
    Events already in the stream are counted once (the processor de-duplicates). Says plainly what part of the
    gap EventStreams no longer holds, and exits 1 then."""
    from datetime import UTC, datetime

    from producer.bootstrap import run_backfill
    from producer.since import parse_since
    from wikitide.errors import ConfigError

    now = datetime.now(UTC)
    start = parse_since(since, now)
    end = parse_since(until, now) if until else now
    if end <= start:
        raise ConfigError(f"--until {end.isoformat()} is not after --since {start.isoformat()}")
    window, stats = run_backfill(Settings.from_env(), source, start, end, linger=linger)
    filled, *missing = window.describe()
    is_filled = window.first_dt is not None and not window.is_beyond_retention
    click.echo(f"wikitide backfill: {filled}", err=not is_filled)
    for line in missing:
        click.echo(f"wikitide backfill: {line}", err=True)
    click.echo(f"read {stats.read}, wrote {stats.written} in {stats.batches} calls, skipped {dict(stats.skipped)}, "
               f"rejected {dict(stats.rejected)}")
    if not is_filled or missing:
        sys.exit(1)


@cli.command("producer-status")
@click.option("--source", default="live", show_default=True, help="The --source the producer runs with.")
def producer_status(source: str) -> None:
    """Print the producer's saved checkpoint as JSON: position, partition offsets, gaps and missed offsets,
    frames rejected by reason and events cut to fit a Kinesis record (all cumulative over restarts)."""
    import json

    from producer.positions import PositionStore
    from wikitide.aws import make_adapter_client, make_client
    from wikitide.errors import ConfigError
    from wikitide.stack import read_outputs

    settings = Settings.from_env()
    resources = read_outputs(make_client(settings, "cloudformation"), settings.stack_name)
    positions = PositionStore(make_adapter_client(settings, "dynamodb"), resources.producer_state_table, source)
    item = positions.load_item()
    if item is None:
        raise ConfigError(f"no saved producer position for --source {source} in {resources.producer_state_table}")
    click.echo(json.dumps(item, indent=2, ensure_ascii=False))


@cli.command()
@click.option("--properties", type=click.Path(path_type=Path, exists=True), required=True)
@click.option("--worker-id", default=None, help="Stable KCL workerId (default: the daemon's random one).")
@click.option("--heap", default="512m", show_default=True, help="JVM maximum heap (-Xmx).")
@click.option("--jvm-option", "jvm_options", multiple=True, envvar="WIKITIDE_JVM_OPTIONS",
              help="An option for the JVM, repeatable (env WIKITIDE_JVM_OPTIONS: space-separated).")
@click.option("--state-dir", type=click.Path(path_type=Path), default=DEFAULT_STATE, show_default=True)
def consume(properties: Path, worker_id: str | None, heap: str, jvm_options: tuple[str, ...], state_dir: Path) -> None:
    """Run one KCL MultiLangDaemon worker with the Python record processor."""
    from kcl_app.daemon import plan_daemon
    from wikitide.aws import make_client
    from wikitide.stack import read_outputs

    settings = Settings.from_env()
    resources = read_outputs(make_client(settings, "cloudformation"), settings.stack_name)
    plan = plan_daemon(settings, properties, resources.stream_name, state_dir, worker_id=worker_id, heap=heap,
                       jvm_options=jvm_options)
    daemon = subprocess.Popen(plan.command)

    forwarded: list[int] = []

    def _forward(signum: int, frame: FrameType | None) -> None:
        forwarded.append(signum)
        daemon.send_signal(signum)

    signal.signal(signal.SIGTERM, _forward)
    signal.signal(signal.SIGINT, _forward)
    code = daemon.wait()
    # The JVM reports a stop it was asked for as 128 + signal once its shutdown hook ran: that is a clean stop.
    sys.exit(0 if forwarded and code in {128 + s for s in forwarded} else code)


@cli.command()
@click.option("--application", default=None, help="KCL applicationName, the lease table (default: <stack>-kcl).")
@click.option("--json", "as_json", is_flag=True, help="Rows as JSON, with full sequence numbers.")
def workers(application: str | None, as_json: bool) -> None:
    """Show each shard: parents, open/closed, lease owner, checkpoint, and lag from the records' arrival times."""
    from wikitide.aws import make_client
    from wikitide.fleet_reader import read_status
    from wikitide.fleet_status import format_table, summary, to_json
    from wikitide.redis_client import connect
    from wikitide.stack import read_outputs

    settings = Settings.from_env()
    resources = read_outputs(make_client(settings, "cloudformation"), settings.stack_name)
    # Lag figures are optional: one try per read (redis-py would otherwise retry a hung server 10 times).
    progress = connect(settings, decode_responses=True) if settings.redis_url else None
    rows = read_status(
        make_client(settings, "kinesis"), make_client(settings, "dynamodb"), progress, resources.stream_name,
        application or f"{settings.stack_name}-kcl",
    )
    if as_json:
        click.echo(to_json(rows))
        return
    click.echo(format_table(rows))
    click.echo(summary(rows))
    if progress is None:
        click.echo("(REDIS_URL is not set: no lag figures)")


@cli.command()
@click.option("--minutes", default=5.0, show_default=True, help="How far back to look.")
@click.option("--json", "as_json", is_flag=True, help="Rows as JSON.")
def metrics(minutes: float, as_json: bool) -> None:
    """The pipeline's own metrics (producer, processor, API) over the last minutes, from CloudWatch (moto's on
    the local stack): one row per component and metric."""
    from datetime import UTC

    from wikitide.aws import make_client
    from wikitide.metrics.report import format_table, read_rows, to_json, window

    settings = Settings.from_env()
    start, end = window(datetime.now(UTC), minutes)
    rows = read_rows(make_client(settings, "cloudwatch"), settings.stack_name, start, end)
    click.echo(to_json(rows) if as_json else format_table(rows, minutes))


@cli.command()
@click.option("--events-per-second", "rate", type=float, required=True, help="The event rate to price.")
@click.option("--region", default="us-east-1", show_default=True, help="A region of the price table.")
@click.option("--json", "as_json", is_flag=True, help="The estimate as JSON.")
def cost(rate: float, region: str, as_json: bool) -> None:
    """Monthly AWS estimate per component at RATE events/s, from the price table in wikitide/cost/prices.json
    (dated, with its source) and the per-event quantities measured by benchmarks/cost_per_event.py."""
    import json

    from wikitide.cost import load
    from wikitide.cost.model import estimate, format_estimate, to_dict

    try:
        result = estimate(rate, region, load("prices.json"), load("measured.json"))
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc
    click.echo(json.dumps(to_dict(result), indent=2) if as_json else format_estimate(result))


@cli.command("scale-shards")
@click.option("--once", is_flag=True, help="Decide (and apply) once, then exit.")
@click.option("--interval", default=60.0, show_default=True, help="Seconds between decisions.")
@click.option("--min-shards", default=1, show_default=True)
@click.option("--max-shards", default=64, show_default=True)
@click.option("--state-dir", type=click.Path(path_type=Path), default=DEFAULT_STATE, show_default=True,
              envvar=STATE_ENV, help="Where the times of the changes made are kept (cool-downs, daily limit).")
@click.option("--workers-service", default=None, metavar="service/CLUSTER/SERVICE",
              help="The KCL service's scalable target: its maximum follows the shard count.")
def scale_shards(once: bool, interval: float, min_shards: int, max_shards: int, state_dir: Path,
                 workers_service: str | None) -> None:
    """Keep the stream's shard count at 40% of its write limits (PROVISIONED streams): reads the stream's
    IncomingBytes/IncomingRecords from CloudWatch and calls UpdateShardCount (wikitide/scaling/)."""
    from wikitide.aws import make_adapter_client, make_client
    from wikitide.scaling.service import ChangeLog, ShardScaler
    from wikitide.scaling.shards import ShardPolicy
    from wikitide.stack import read_outputs

    settings = Settings.from_env()
    resources = read_outputs(make_client(settings, "cloudformation"), settings.stack_name)
    try:
        policy = ShardPolicy(min_shards=min_shards, max_shards=max_shards)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc
    scaler = ShardScaler(
        make_adapter_client(settings, "cloudwatch"), make_adapter_client(settings, "kinesis"), resources.stream_name,
        ChangeLog(state_dir / f"shard-changes-{resources.stream_name}.json"), policy=policy,
        fast_retries=settings.fast_retries, workers=workers_service,
        autoscaling=make_adapter_client(settings, "application-autoscaling") if workers_service else None,
    )
    if once:
        decision = scaler.step()
        click.echo(f"{resources.stream_name}: {decision.target or 'unchanged'} ({decision.reason})")
        return
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    scaler.run(stop, interval)


@cli.group()
def archive() -> None:
    """The raw-event archive in S3 (Firehose objects): forward (local stack), stats, replay."""


def _archive_time(option: str, value: str) -> datetime:
    from datetime import UTC, datetime

    from producer.since import parse_since
    from wikitide.errors import ConfigError

    try:
        return parse_since(value, datetime.now(UTC))
    except ConfigError as exc:
        raise ConfigError(f"{option} {value!r}: use an ISO time (2026-11-27T10:00:00Z) or a duration ago (15m, 2d)") \
            from exc


def _archive_bucket(settings: Settings, bucket: str | None) -> str:
    if bucket:
        return bucket
    from wikitide.aws import make_client
    from wikitide.stack import read_outputs

    return read_outputs(make_client(settings, "cloudformation"), settings.stack_name).archive_bucket


@archive.command("forward")
@click.option("--delivery-stream", default=None, help="DirectPut delivery stream (default: <stack>-archive).")
@click.option("--state-dir", type=click.Path(path_type=Path), default=DEFAULT_STATE, show_default=True)
@click.option("--buffer-seconds", default=60.0, show_default=True, help="Deliver at least this often (Firehose's "
              "IntervalInSeconds).")
@click.option("--buffer-mb", default=5.0, show_default=True, help="Deliver when this much is read (SizeInMBs).")
def archive_forward(delivery_stream: str | None, state_dir: Path, buffer_seconds: float, buffer_mb: float) -> None:
    """Local stack only: read the stream like any consumer and deliver it to a DirectPut Firehose stream (on AWS
    the delivery stream reads Kinesis itself)."""
    from wikitide.archive.local import delivery_stream_name, run_forwarder
    from wikitide.aws import make_client
    from wikitide.stack import read_outputs

    settings = Settings.from_env()
    resources = read_outputs(make_client(settings, "cloudformation"), settings.stack_name)
    run_forwarder(settings, resources.stream_name, delivery_stream or delivery_stream_name(settings.stack_name),
                  state_dir, buffer_seconds=buffer_seconds, buffer_bytes=int(buffer_mb * 1024 * 1024))


@archive.command("stats")
@click.option("--start", required=True, help="Received at or after: ISO time or a duration ago (2h).")
@click.option("--end", default="0s", show_default=True, help="Received before: ISO time or a duration ago.")
@click.option("--bucket", default=None, help="Archive bucket (default: the stack's ArchiveBucketName).")
@click.option("--json", "as_json", is_flag=True, help="The counts as JSON.")
def archive_stats(start: str, end: str, bucket: str | None, as_json: bool) -> None:
    """Distinct events by wiki and type among the records received in [start, end); corrupt objects are named
    and skipped (exit status 1 when there was one)."""
    import json

    from wikitide.archive.objects import Corrupt, S3Archive, read_range
    from wikitide.archive.stats import ArchiveStats, count
    from wikitide.aws import make_adapter_client

    settings = Settings.from_env()
    store = S3Archive(make_adapter_client(settings, "s3"), _archive_bucket(settings, bucket),
                      fast=settings.fast_retries)
    stats = ArchiveStats()

    def corrupt(found: Corrupt) -> None:
        stats.corrupt.append(found)
        click.echo(f"wikitide: corrupt object skipped: {found.key}: {found.reason}", err=True)

    count(read_range(store, _archive_time("--start", start), _archive_time("--end", end), corrupt), stats)
    click.echo(json.dumps(stats.to_json(), indent=2, ensure_ascii=False) if as_json else stats.table())
    if stats.corrupt:
        sys.exit(1)


@archive.command("replay")
@click.option("--start", required=True, help="Received at or after: ISO time or a duration ago (2h).")
@click.option("--end", default="0s", show_default=True, help="Received before: ISO time or a duration ago.")
@click.option("--into", "into", default=None, help="Kinesis stream to put into (default: the stack's stream).")
@click.option("--rate", type=float, default=None, help="At most this many records a second.")
@click.option("--bucket", default=None, help="Archive bucket (default: the stack's ArchiveBucketName).")
@click.option("--state-dir", type=click.Path(path_type=Path), default=DEFAULT_STATE, show_default=True)
@click.option("--from-start", is_flag=True, help="Forget the saved position of this range and stream.")
def archive_replay(start: str, end: str, into: str | None, rate: float | None, bucket: str | None, state_dir: Path,
                   from_start: bool) -> None:
    """Put the records received in [start, end) back into Kinesis; run it again after an interruption and it
    resumes after the last call that succeeded."""
    from tqdm import tqdm

    from producer.kinesis_writer import make_writer, put_api_of
    from wikitide import retry
    from wikitide.archive.objects import Corrupt, S3Archive
    from wikitide.archive.replay import ReplayPosition, replay
    from wikitide.aws import make_adapter_client, make_client
    from wikitide.stack import read_outputs

    settings = Settings.from_env()
    stream = into or read_outputs(make_client(settings, "cloudformation"), settings.stack_name).stream_name
    name = _archive_bucket(settings, bucket)
    begin, finish = _archive_time("--start", start), _archive_time("--end", end)
    store = S3Archive(make_adapter_client(settings, "s3"), name, fast=settings.fast_retries)
    # The producer's write path (WIKITIDE_KINESIS_PUT): on the local stack the launcher sets `auto`, because
    # kinesis-mock's PutRecords slows as the stream grows and a replay makes it grow.
    writer = make_writer(
        make_adapter_client(settings, "kinesis", read_timeout=retry.PRODUCER_KINESIS_READ_TIMEOUT), stream,
        put_api_of(settings.kinesis_put), aggregate=settings.kinesis_aggregate, fast_retries=settings.fast_retries,
    )
    position = ReplayPosition(state_dir, name, begin, finish, stream)
    if from_start:
        position.clear()
    bar = tqdm(unit=" records", desc=f"replay into {stream} via {WRITE_PATHS[put_api_of(settings.kinesis_put)]}",
               dynamic_ncols=True)

    def corrupt(found: Corrupt) -> None:
        bar.write(f"wikitide: corrupt object skipped: {found.key}: {found.reason}")

    def progress(records: int, key: str) -> None:
        bar.update(records)
        bar.set_postfix_str(key.rsplit("/", 1)[-1][-44:], refresh=False)

    try:
        with bar:
            result = replay(store, writer, position, begin, finish, rate=rate, on_corrupt=corrupt,
                            on_progress=progress)
    except KeyboardInterrupt:
        # A duration (2h) names another range on the next run: the resume needs the same absolute times.
        click.echo(f"interrupted; resume with: wikitide archive replay --start {begin.isoformat()} "
                   f"--end {finish.isoformat()} --into {stream} --state-dir {state_dir}", err=True)
        sys.exit(130)
    finally:
        writer.close()
    resumed = f" (resumed after {result.resumed_after[0]} line {result.resumed_after[1]})" if result.resumed_after \
        else ""
    click.echo(f"replayed {result.records} records in {result.calls} calls into {stream} via "
               f"{WRITE_PATHS[put_api_of(settings.kinesis_put)]}{resumed}; "
               f"{len(result.corrupt or [])} corrupt objects skipped")


@cli.command()
@click.option("--stack", "stack_name", required=True, help="The stack to create or update.")
@click.option("--env", "environment", type=click.Choice(["local", "staging", "production"]), required=True,
              help="Sets the template's Environment parameter, when it has one.")
@click.option("--template", type=click.Path(path_type=Path, exists=True, dir_okay=False), default=None,
              help="The layer's template (default: cloudformation/wikitide.yaml, the data layer).")
@click.option("--param", "params", multiple=True, metavar="K=V", help="A template parameter (repeatable).")
@click.option("--yes", is_flag=True, help="Apply without asking.")
@click.option("--timeout", default=1800.0, show_default=True, help="Seconds to wait for the stack.")
def deploy(stack_name: str, environment: str, template: Path | None, params: tuple[str, ...], yes: bool,
           timeout: float) -> None:
    """Lint a template, show what changes against the deployed stack, then create or update it and report."""
    from wikitide.errors import ConfigError
    from wikitide.stack import TEMPLATE_PATH, load_template

    path = template or TEMPLATE_PATH
    given: dict[str, str] = {}
    for param in params:
        key, sep, value = param.partition("=")
        if not sep or not key:
            raise ConfigError(f"--param takes K=V, got {param!r}")
        given[key] = value
    if "Environment" in load_template(path).get("Parameters", {}):
        given.setdefault("Environment", environment)
    _deploy_stack(stack_name, path, given, yes=yes, timeout=timeout)


@cli.command()
@click.option("--shards", type=click.IntRange(min=1), required=True, help="The change stream's new shard count.")
@click.option("--stack", "stack_name", default=None, help="The data layer's stack (default: WIKITIDE_STACK).")
@click.option("--yes", is_flag=True, help="Apply without asking.")
@click.option("--timeout", default=1800.0, show_default=True, help="Seconds to wait for the stack.")
def scale(shards: int, stack_name: str | None, yes: bool, timeout: float) -> None:
    """Change the change stream's shard count: a `wikitide deploy` of the data layer with ShardCount=N and every
    other parameter as deployed, so the template stays the one source of truth (an UpdateShardCount beside
    CloudFormation would be undone by the next deploy). On the local stack that deploy then reshards kinesis-mock's
    stream (uniform scaling: at most double or half per run, as on AWS)."""
    from wikitide.stack import TEMPLATE_PATH

    _deploy_stack(stack_name or Settings.from_env().stack_name, TEMPLATE_PATH, {"ShardCount": str(shards)}, yes=yes,
                  timeout=timeout, must_exist=True)


def _deploy_stack(stack_name: str, path: Path, given: dict[str, str], *, yes: bool, timeout: float,
                  must_exist: bool = False) -> None:
    """Lint, show the plan, ask unless `yes`, apply and report; on the local stack, then bring what moto's
    CloudFormation leaves out (kinesis-mock's shard count, new table indexes) to the template."""
    from wikitide import deploy as deployment
    from wikitide.aws import make_client
    from wikitide.errors import ConfigError

    warnings = deployment.lint(path)
    if warnings:
        click.echo(warnings)
    settings = Settings.from_env()
    emulator = settings.cloudformation_endpoint is not None
    # One attempt per call: an update is not repeated behind the operator's back.
    cloudformation = make_client(settings, "cloudformation", max_attempts=1, read_timeout=60.0)
    plan = deployment.plan(cloudformation, stack_name, path, given, emulator=emulator)
    if must_exist and not plan.exists:
        raise ConfigError(f"no stack {stack_name!r} to scale: deploy it first (wikitide deploy)")
    click.echo(deployment.render(plan))
    if not plan.has_changes:
        return
    if not yes and not click.confirm("Apply these changes?", default=False):
        raise ConfigError("not applied")
    status = deployment.apply(cloudformation, plan, emulator=emulator, echo=click.echo, timeout=timeout)
    click.echo(f"{stack_name}: {status}")
    if emulator:
        _reconcile_local_indexes(settings, stack_name, path)
    if emulator and settings.kinesis_endpoint:
        _reconcile_local_stream(settings, cloudformation, stack_name, path, plan.parameters)


def _reconcile_local_indexes(settings: Settings, stack_name: str, template: Path) -> None:
    """moto's CloudFormation does not add a table's new indexes: add them with UpdateTable."""
    from wikitide.aws import make_client
    from wikitide.stack import load_template, reconcile_indexes

    for index in reconcile_indexes(make_client(settings, "dynamodb"), stack_name, load_template(template)):
        click.echo(f"local DynamoDB index {index}: created (the emulator's CloudFormation does not add indexes)")


def _reconcile_local_stream(settings: Settings, cloudformation: object, stack_name: str, template: Path,
                            parameters: dict[str, str]) -> None:
    """On the local stack the stream lives in kinesis-mock, not in moto: give it the template's shard count."""
    from wikitide.aws import make_client
    from wikitide.stack import load_template, reconcile_stream, resolve_shard_count

    outputs = {o["OutputKey"]: o["OutputValue"]
               for o in cloudformation.describe_stacks(StackName=stack_name)["Stacks"][0].get("Outputs", [])}  # type: ignore[attr-defined]
    if "StreamName" not in outputs:
        return
    shards = resolve_shard_count(load_template(template), parameters)
    before = reconcile_stream(make_client(settings, "kinesis"), outputs["StreamName"], shards)
    if before is not None:
        click.echo(f"local Kinesis stream {outputs['StreamName']}: {before} -> {shards} shards")


@cli.command()
@click.option("--bind", default="127.0.0.1:8000", show_default=True)
@click.option("--workers", default=2, show_default=True)
def api(bind: str, workers: int) -> None:
    """Serve the REST API and dashboard under gunicorn."""
    gunicorn = str(Path(sys.executable).parent / "gunicorn")
    os.execv(gunicorn, [gunicorn, "--config", "python:api.serving", "--bind", bind, "--workers", str(workers),
                        "api:create_app()"])


@cli.command()
@click.option("--out", type=click.Path(path_type=Path), required=True, help="SSE file to write.")
@click.option("--seconds", default=60.0, show_default=True)
@click.option("--url", default=None, help="SSE URL (default: the live EventStreams recentchange stream).")
def record(out: Path, seconds: float, url: str | None) -> None:
    """Capture the live stream (or any SSE URL) to an SSE file that `--source replay:FILE` replays."""
    from producer.recorder import record as record_stream
    from producer.sources import LIVE_URL, user_agent

    count = record_stream(url or LIVE_URL, out, seconds, user_agent(Settings.from_env().contact))
    click.echo(f"recorded {count} events to {out}")


@cli.command()
@click.argument("path", type=click.Path(path_type=Path, exists=True))
@click.option("--port", default=8765, show_default=True)
@click.option("--speed", default=1.0, show_default=True)
def replay(path: Path, port: int, speed: float) -> None:
    """Serve a recording as an SSE stream (EventStreams format) until Ctrl-C."""

    from producer.frames import load_frames
    from producer.replay import ReplayServer

    frames = load_frames(path)
    server = ReplayServer(lambda: frames, speed=speed, port=port)
    server.start()
    click.echo(f"replaying {len(frames)} frames of {path} at {server.url}")
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stop.wait()
    server.stop()


def main() -> None:
    from botocore.exceptions import BotoCoreError, ClientError
    from redis.exceptions import ConnectionError as RedisConnectionError

    try:
        cli(standalone_mode=True)
    except WikitideError as exc:
        click.echo(f"wikitide: {exc}", err=True)
        sys.exit(2)
    except (BotoCoreError, ClientError, RedisConnectionError) as exc:
        click.echo(f"wikitide: {exc}; {NO_STACK_HINT}", err=True)
        sys.exit(2)
