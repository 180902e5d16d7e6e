"""moto's CPU per DynamoDB call: the local stack's moto server (`wikitide.localstack.moto_server`, which remembers
each host's backend and writes no access log) against moto's own `moto_server` as the baseline, in the same run.

Each round starts a fresh server of each kind in turn, makes the same calls (a conditional PutItem, an UpdateItem
that adds to a counter, a GetItem and a Query, as the record processor and the API make them) and reads the
server's CPU time from /proc. The machine is shared and noisy: the figures are medians over rounds, and the
ratio is what to read.

    .venv/bin/python benchmarks/moto_dispatch.py [--rounds 5] [--calls 800]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

import boto3
import psutil

from wikitide.localstack.services import free_port, port_open

TABLE = "bench"


def _cpu_seconds(pid: int) -> float:
    """CPU time of the server and its worker processes."""
    server = psutil.Process(pid)
    return sum(sum(p.cpu_times()[:2]) for p in [server, *server.children(recursive=True)])


def _start(command: list[str], port: int) -> subprocess.Popen[bytes]:
    process = subprocess.Popen([*command, "-H", "127.0.0.1", "-p", str(port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while not port_open(port):
        if time.monotonic() > deadline or process.poll() is not None:
            process.kill()
            raise SystemExit(f"{command} did not start")
        time.sleep(0.1)
    return process


def _client(port: int):  # noqa: ANN202 - a boto3 client
    return boto3.client("dynamodb", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1",
                        aws_access_key_id="bench", aws_secret_access_key="bench")


def _calls(client, calls: int, offset: int) -> None:  # noqa: ANN001
    for i in range(offset, offset + calls // 4):
        client.put_item(TableName=TABLE, Item={"pk": {"S": f"event-{i}"}, "sk": {"S": "claim"}},
                        ConditionExpression="attribute_not_exists(pk)")
        client.update_item(TableName=TABLE, Key={"pk": {"S": f"cell-{i % 40}"}, "sk": {"S": "0000000001#s"}},
                           UpdateExpression="ADD events :one", ExpressionAttributeValues={":one": {"N": "1"}})
        client.get_item(TableName=TABLE, Key={"pk": {"S": f"event-{i}"}, "sk": {"S": "claim"}})
        client.query(TableName=TABLE, KeyConditionExpression="pk = :pk",
                     ExpressionAttributeValues={":pk": {"S": f"cell-{i % 40}"}})


def _measure(command: list[str], calls: int) -> tuple[float, float]:
    """(calls per second, server CPU milliseconds per call) for one fresh server."""
    port = free_port()
    server = _start(command, port)
    try:
        client = _client(port)
        client.create_table(
            TableName=TABLE, BillingMode="PAY_PER_REQUEST",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                  {"AttributeName": "sk", "AttributeType": "S"}],
        )
        _calls(client, 100, 10**6)  # warm-up: moto builds its backend on the first call of a service
        cpu, started = _cpu_seconds(server.pid), time.perf_counter()
        _calls(client, calls, 0)
        took, used = time.perf_counter() - started, _cpu_seconds(server.pid) - cpu
        return calls / took, used / calls * 1000
    finally:
        server.kill()
        server.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=800)
    args = parser.parse_args()
    kinds = {
        "moto_server (baseline)": [str(Path(sys.executable).parent / "moto_server")],
        "wikitide.localstack.moto_server": [sys.executable, "-m", "wikitide.localstack.moto_server"],
    }
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in kinds}
    for _ in range(args.rounds):
        for name, command in kinds.items():
            results[name].append(_measure(command, args.calls))
    print(f"{args.rounds} rounds of {args.calls} calls (PutItem, UpdateItem, GetItem, Query), medians:")
    cpu = {}
    for name, runs in results.items():
        rate = statistics.median(r for r, _ in runs)
        cpu[name] = statistics.median(c for _, c in runs)
        print(f"  {name:34} {rate:7.0f} calls/s  {cpu[name]:5.2f} ms of server CPU per call")
    baseline, ours = cpu.values()
    print(f"server CPU per call: {ours / baseline:.2f} of the baseline")


if __name__ == "__main__":
    main()
