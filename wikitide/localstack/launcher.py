"""`wikitide local up`: the local stack and the whole pipeline in the foreground, until Ctrl-C."""

from __future__ import annotations

import logging
import os
import secrets
import signal
import threading
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from kcl_app.daemon import read_properties
from wikitide import stack
from wikitide.aws import make_client
from wikitide.localstack import registry, services
from wikitide.localstack.supervisor import ServiceSpec, Supervisor
from wikitide.settings import Settings

logger = logging.getLogger(__name__)

PRODUCER_STOP_SECONDS = 10.0
# The archive forwarder delivers what it read and saves its positions: one PutRecordBatch and a file write.
FORWARDER_STOP_SECONDS = 10.0
# What the JVM needs after the grace period: its shutdown hook returns, the process exits.
DAEMON_EXIT_SECONDS = 3.0
KCL_DEFAULT_GRACE_MILLIS = 0  # the KCL's own default: no final checkpoint at all


def shutdown_grace_seconds(properties: Path) -> float:
    """The grace the daemon gives its processors on SIGTERM, from the properties file it will read."""
    value = read_properties(properties).get("shutdownGraceMillis", str(KCL_DEFAULT_GRACE_MILLIS))
    return int(value) / 1000


@dataclass
class LocalStack:
    """The emulators and, optionally, the pipeline's processes, all under one supervisor."""

    state_dir: Path
    ports: services.Ports = field(default_factory=services.Ports)
    stack_name: str = "wikitide-local"

    def __post_init__(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.supervisor = Supervisor(self.state_dir / "logs")
        self.env = services.endpoint_env(self.ports, self.stack_name)

    def start_infrastructure(self) -> None:
        self.supervisor.start_together([
            services.kinesis_mock(self.ports, self.state_dir),
            services.moto(self.ports),
            services.redis_server(self.ports, self.state_dir),
        ])

    def provision(self, shard_count: int | None = None) -> stack.StackResources:
        """Deploy the CloudFormation template to the local emulators; idempotent."""
        os.environ.update(self.env)
        settings = Settings.from_env()
        parameters = {"ShardCount": str(shard_count)} if shard_count else None
        return stack.deploy_local(
            make_client(settings, "cloudformation"), make_client(settings, "kinesis"), self.stack_name,
            parameters=parameters,
        )

    def seed_first_leases(self, resources: stack.StackResources, properties: Path, stop: threading.Event) -> None:
        """Write the stream's first leases once the workers' lease table exists, so that they do not wait KCL 3's
        random 1-30 s for one another (`wikitide.localstack.first_leases`)."""
        from wikitide.localstack.first_leases import lease_table_name, seed_in_background

        os.environ.update(self.env)
        settings = Settings.from_env()
        values = read_properties(properties)
        seed_in_background(
            make_client(settings, "dynamodb"), make_client(settings, "kinesis"),
            table=lease_table_name(values, self.stack_name), stream=resources.stream_name,
            initial_position=values.get("initialPositionInStream", "LATEST"), stop=stop,
        )

    def start_producer(self, source: str, *, speed: float = 1.0) -> None:
        self.supervisor.start(ServiceSpec(
            name="producer",
            command=services.wikitide_command("produce", "--source", source, "--speed", str(speed)),
            env=self.env,
            # Flushing what was read and saving the position takes a round trip or two; if it cannot finish,
            # the next start re-reads from the saved position and the processors drop the duplicates.
            stop_timeout=PRODUCER_STOP_SECONDS,
            tier=1,
            nice=services.CLIENT_NICE,
        ))

    def start_worker(self, index: int, properties: Path) -> None:
        worker_id = f"worker-{index}"
        self.supervisor.start(ServiceSpec(
            name=f"kcl-{worker_id}",
            command=services.wikitide_command(
                "consume", "--properties", str(properties), "--worker-id", worker_id,
                "--state-dir", str(self.state_dir),
            ),
            env={**self.env, "WIKITIDE_PROCESSOR_LOG": str(self.state_dir / "logs" / f"processor-{worker_id}.log")},
            # The daemon gives its processors shutdownGraceMillis for their final checkpoints, then exits.
            stop_timeout=shutdown_grace_seconds(properties) + DAEMON_EXIT_SECONDS,
            tier=1,
            nice=services.CLIENT_NICE,
        ))

    def start_archive(self, resources: stack.StackResources, *, buffer_seconds: float = 60.0) -> str:
        """The archive's DirectPut delivery stream in moto's Firehose, and the forwarder that feeds it from Kinesis
        (on AWS the delivery stream reads the stream itself: `cloudformation/archive.yaml`)."""
        from wikitide.archive.local import delivery_stream_name, ensure_delivery_stream

        os.environ.update(self.env)
        name = delivery_stream_name(self.stack_name)
        ensure_delivery_stream(make_client(Settings.from_env(), "firehose"), name, resources.archive_bucket)
        self.supervisor.start(ServiceSpec(
            name="archive-forwarder",
            command=services.wikitide_command(
                "archive", "forward", "--delivery-stream", name, "--state-dir", str(self.state_dir),
                "--buffer-seconds", str(buffer_seconds),
            ),
            env=self.env,
            stop_timeout=FORWARDER_STOP_SECONDS,
            tier=1,
            nice=services.CLIENT_NICE,
        ))
        return name

    def start_api(self, control_token: str | None = None) -> None:
        env = self.env if control_token is None else {**self.env, "WIKITIDE_CONTROL_TOKEN": control_token}
        self.supervisor.start(services.api_server(self.ports, env))

    def control_token(self) -> tuple[str, str]:
        """The API's control token: `WIKITIDE_CONTROL_TOKEN` when set, else one made once and kept in the state
        directory (readable by its owner only), so that it survives restarts of the stack."""
        path = self.state_dir / "control-token"
        given = os.environ.get("WIKITIDE_CONTROL_TOKEN")
        if given:
            return given, "WIKITIDE_CONTROL_TOKEN"
        if not path.exists():
            path.touch(mode=0o600)
            path.write_text(secrets.token_urlsafe(32), encoding="ascii")
        return path.read_text(encoding="ascii").strip(), str(path)

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.api}"

    def stop(self) -> None:
        self.supervisor.stop_all()


def resolve_source(source: str, user_agent: str) -> str:
    """`live` falls back to `synthetic` (said in one line) when EventStreams cannot be reached from here."""
    if source != "live":
        return source
    from producer.sources import LIVE_URL, reachable  # deferred: only the launcher's live path needs it

    if reachable(LIVE_URL, user_agent):
        return source
    print(f"wikitide: {LIVE_URL} cannot be reached; running on the SYNTHETIC source instead", flush=True)
    return "synthetic"


def run_local(
    state_dir: Path, ports: services.Ports, *, source: str, speed: float, workers: int, properties: Path,
    user_agent: str, archive_buffer_seconds: float = 60.0,
) -> None:
    local = LocalStack(state_dir=state_dir, ports=ports)
    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    try:
        print(f"wikitide: starting the local stack (logs in {state_dir / 'logs'})", flush=True)
        local.start_infrastructure()
        resources = local.provision()
        print(f"wikitide: stream {resources.stream_name}, table {resources.events_table}", flush=True)
        chosen = resolve_source(source, user_agent)
        local.seed_first_leases(resources, properties, stop)
        for index in range(1, workers + 1):
            local.start_worker(index, properties)
        local.start_producer(chosen, speed=speed)
        archive = local.start_archive(resources, buffer_seconds=archive_buffer_seconds)
        print(f"wikitide: archive s3://{resources.archive_bucket}/raw/ through Firehose {archive}", flush=True)
        token, token_where = local.control_token()
        local.start_api(control_token=token)
        label = " (SYNTHETIC data)" if chosen == "synthetic" else ""
        print(f"wikitide: source {chosen}{label}", flush=True)
        registry.register(state_dir, local.env, local.api_url)
        print(f"wikitide: API and dashboard at {local.api_url}/  (Ctrl-C stops everything; `wikitide` commands in "
              "another shell use this stack, `wikitide local env` prints its variables)", flush=True)
        print(f"wikitide: control endpoints (/v1/control/*) take the token in {token_where}", flush=True)
        while not stop.wait(1.0):
            local.supervisor.check()
    finally:
        print("wikitide: stopping", flush=True)
        registry.unregister(state_dir)
        local.stop()
        print("wikitide: stopped", flush=True)
