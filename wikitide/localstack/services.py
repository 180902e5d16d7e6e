"""What the local stack runs, on which ports, and the environment that points the code at it."""

from __future__ import annotations

import os
import random
import signal
import socket
import sys
import threading
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from wikitide.errors import ConfigError
from wikitide.localstack.supervisor import ServiceSpec

REPO_ROOT = Path(__file__).resolve().parents[2]
KINESIS_MOCK_DIR = REPO_ROOT / ".local" / "kinesis-mock" / "node_modules" / "kinesis-local"
LOCAL_CREDENTIALS = {
    # kinesis-mock derives the account from the access key: producer and KCL must use the same one.
    "AWS_ACCESS_KEY_ID": "test",
    "AWS_SECRET_ACCESS_KEY": "test",
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}


API_GRACE_SECONDS = 5
# The KCL daemon on one machine: its work is waiting on the emulators, so the C2 compiler's warm-up and parallel
# GC threads only take CPU from them. Measured with one worker on a 2-shard stream (2,000 records, then 60 s idle):
# the JVM used 18.5 s of CPU to process them with the defaults and 10.7 s with these. AWS keeps the JVM's defaults.
LOCAL_JVM_OPTIONS = ("-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC")
# The pipeline's processes run this much nicer than the emulators they all wait on. On a busy 2-core machine the
# scheduler otherwise gives a single-threaded kinesis-mock the same share as each of some 30 runnable clients:
# it starved ("Your CPU is probably starving" in its log), a single PutRecord outlasted its 15-s read timeout,
# and the producer, the KCL and the archive forwarder all stalled behind it (the end-to-end test under `make test`).
# Served first, the emulators answer, and the clients use what is left.
CLIENT_NICE = 10


@dataclass(frozen=True)
class Ports:
    kinesis: int = 4568
    kinesis_tls: int = 4567
    moto: int = 5005
    redis: int = 6380
    api: int = 8000


def endpoint_env(ports: Ports, stack_name: str) -> dict[str, str]:
    """The environment every wikitide process gets on the local stack: the AWS SDK's own endpoint variables."""
    moto = f"http://127.0.0.1:{ports.moto}"
    return {
        **LOCAL_CREDENTIALS,
        "AWS_ENDPOINT_URL_KINESIS": f"http://127.0.0.1:{ports.kinesis}",
        "AWS_ENDPOINT_URL_DYNAMODB": moto,
        "AWS_ENDPOINT_URL_S3": moto,
        "AWS_ENDPOINT_URL_FIREHOSE": moto,
        "AWS_ENDPOINT_URL_CLOUDFORMATION": moto,
        # Every process publishes its metrics to moto's CloudWatch every 10 s (`wikitide metrics` reads them).
        "AWS_ENDPOINT_URL_CLOUDWATCH": moto,
        "WIKITIDE_METRICS": "cloudwatch",
        "WIKITIDE_METRICS_INTERVAL": "10",
        "REDIS_URL": f"redis://127.0.0.1:{ports.redis}/0",
        "WIKITIDE_STACK": stack_name,
        "WIKITIDE_JVM_OPTIONS": " ".join(LOCAL_JVM_OPTIONS),
        # kinesis-mock's PutRecords slows down with every record a shard holds; its PutRecord does not.
        "WIKITIDE_KINESIS_PUT": os.environ.get("WIKITIDE_KINESIS_PUT") or "auto",
    }


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def http_answers(url: str) -> bool:
    try:
        # Only http://127.0.0.1:<port> URLs built in this module reach here, never a user's URL.
        with urllib.request.urlopen(url, timeout=2):  # nosec B310
            return True
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False


# Ports the local stack's services listen on, when not given: below Linux's ephemeral range (32768-60999), so no
# outgoing connection holds one, and one slice per pytest-xdist worker (slice 0 outside pytest-xdist), so two
# processes of a test run never pick the same port between choosing it and a service binding it. (Ephemeral ports,
# as before, collided: a test's redis-server found its port taken by another worker's kinesis-mock.)
PORT_RANGE_START = 10_000
PORTS_PER_SLICE = 2_500
PORT_SLICES = 9
_handed_out: set[int] = set()
_handing_out = threading.Lock()


def port_slice(worker: str | None = None) -> range:
    """The ports this process picks from: `PYTEST_XDIST_WORKER` `gw<N>` gets slice N+1 (N up to 7), any other 0."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "") if worker is None else worker
    number = worker.removeprefix("gw")
    index = int(number) % (PORT_SLICES - 1) + 1 if worker.startswith("gw") and number.isdigit() else 0
    start = PORT_RANGE_START + index * PORTS_PER_SLICE
    return range(start, start + PORTS_PER_SLICE)


def free_port() -> int:
    """A port nothing listens on, from this process's slice (`port_slice`), never the same twice in a process."""
    ports = port_slice()
    with _handing_out:
        for _ in range(len(ports)):
            port = random.choice(ports)  # noqa: S311 - spreads processes of the same slice, not a secret
            if port not in _handed_out and _bindable(port):
                _handed_out.add(port)
                return port
    raise ConfigError(f"no free port left in {ports.start}-{ports.stop - 1}")


def _bindable(port: int) -> bool:
    """Whether a listener could take `port` on every interface (so on 127.0.0.1 too)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("", port))
        except OSError:
            return False
    return True


def _venv_script(name: str) -> str:
    path = Path(sys.executable).parent / name
    if not path.exists():
        raise ConfigError(f"{name} is not installed in {path.parent}; run `make up` (or `pip install -e '.[local]'`)")
    return str(path)


def kinesis_mock(ports: Ports, state_dir: Path) -> ServiceSpec:
    main = KINESIS_MOCK_DIR / "main.js"
    if not main.exists():
        raise ConfigError(f"kinesis-mock is not installed at {KINESIS_MOCK_DIR}; run `make install`")
    return ServiceSpec(
        name="kinesis-mock",
        # main.js reads server.json (its TLS key) from the working directory.
        command=["node", str(main)],
        cwd=KINESIS_MOCK_DIR,
        env={
            "KINESIS_MOCK_PLAIN_PORT": str(ports.kinesis),
            "KINESIS_MOCK_TLS_PORT": str(ports.kinesis_tls),
            "LOG_LEVEL": "WARN",
            "CREATE_STREAM_DURATION": "0ms",
            "SHARD_LIMIT": "100",
        },
        ready=lambda: port_open(ports.kinesis),
        # In memory: nothing to save. It ignores SIGTERM (measured: always killed after the timeout), so kill it.
        stop_signal=signal.SIGKILL,
        stop_timeout=2,
    )


def moto(ports: Ports) -> ServiceSpec:
    return ServiceSpec(
        name="moto",
        # Every stack here is provisioned through CloudFormation first: its backend is built while the rest starts.
        command=[sys.executable, "-m", "wikitide.localstack.moto_server", "-H", "127.0.0.1", "-p", str(ports.moto),
                 "--preload", "cloudformation"],
        ready=lambda: http_answers(f"http://127.0.0.1:{ports.moto}/moto-api/"),
        # In memory: nothing to save. On SIGTERM it took over 3 s with the pipeline's connections open (measured).
        stop_signal=signal.SIGKILL,
        stop_timeout=2,
    )


def redis_server(ports: Ports, state_dir: Path) -> ServiceSpec:
    return ServiceSpec(
        name="redis",
        command=[
            "redis-server", "--port", str(ports.redis), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "no", "--dir", str(state_dir),
        ],
        ready=lambda: port_open(ports.redis),
        stop_timeout=3,  # no persistence: SIGTERM ends it at once
    )


def wikitide_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "wikitide", *args]


def api_server(ports: Ports, env: dict[str, str], workers: int = 2, worker_class: str | None = None) -> ServiceSpec:
    """gunicorn serving the API; `worker_class` overrides api/serving.py's (the stream benchmark compares two)."""
    override = ["--worker-class", worker_class] if worker_class else []
    return ServiceSpec(
        name="api",
        command=[
            # Worker class, threads, timeouts and request limits: api/serving.py.
            _venv_script("gunicorn"), "--config", "python:api.serving", "--bind", f"127.0.0.1:{ports.api}",
            "--workers", str(workers), *override,
            # Graceful stop: requests in flight get API_GRACE_SECONDS (every request is bounded by its own
            # dependency timeouts, a few seconds), idle workers leave at once.
            "--graceful-timeout", str(API_GRACE_SECONDS),
            "--access-logfile", "-", "api:create_app()",
        ],
        cwd=REPO_ROOT,
        env=env,
        ready=lambda: http_answers(f"http://127.0.0.1:{ports.api}/health"),
        stop_timeout=API_GRACE_SECONDS + 2,
        tier=1,
        nice=CLIENT_NICE,
    )
