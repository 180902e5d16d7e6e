"""Starting the Java MultiLangDaemon: the effective properties file and the exact command line.

The user's properties file holds the tuning; what depends on the install and the stack (processor path,
stream name, lease table, endpoints, worker id) is added here, so one file works on every machine.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import amazon_kclpy

from wikitide.errors import ConfigError
from wikitide.settings import Settings

MAIN_CLASS = "software.amazon.kinesis.multilang.MultiLangDaemon"
PROCESSOR_SCRIPT = "wikitide-kcl-processor"
DEFAULT_HEAP = "512m"
LOGBACK = Path(__file__).resolve().parent / "logback.xml"


@dataclass(frozen=True)
class DaemonPlan:
    properties: dict[str, str]
    properties_path: Path
    command: list[str]


def read_properties(path: Path) -> dict[str, str]:
    """Read `key = value` lines (`#`/`!` comments); enough of the Java format for the KCL's flat keys."""
    if not path.is_file():
        raise ConfigError(f"properties file not found: {path}")
    values: dict[str, str] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped[0] in "#!":
            continue
        key, sep, value = stripped.partition("=")
        if not sep:
            key, sep, value = stripped.partition(":")
        if not sep or not key.strip():
            raise ConfigError(f"{path}:{number}: expected 'key = value', got {stripped!r}")
        values[key.strip()] = value.strip()
    return values


def processor_executable() -> Path:
    """The processor's console script in this install; the daemon splits executableName on spaces."""
    candidate = Path(sys.executable).parent / PROCESSOR_SCRIPT
    found = candidate if candidate.exists() else (Path(p) if (p := shutil.which(PROCESSOR_SCRIPT)) else None)
    if found is None:
        raise ConfigError(f"{PROCESSOR_SCRIPT} is not installed; run `pip install .` (or `make up`)")
    resolved = found.resolve() if found.is_symlink() else found.absolute()
    if " " in str(resolved):
        raise ConfigError(f"the KCL splits executableName on spaces; use a path without spaces: {resolved}")
    return resolved


def jars_dir() -> Path:
    path = Path(amazon_kclpy.__file__).resolve().parent / "jars"
    if not any(path.glob("amazon-kinesis-client-multilang-*.jar")):
        raise ConfigError(f"no KCL jars in {path}: install kclpy-ext (not amazon-kclpy, whose install downloads them)")
    return path


def plan_daemon(
    settings: Settings,
    properties_file: Path,
    stream_name: str,
    state_dir: Path,
    *,
    worker_id: str | None = None,
    heap: str = DEFAULT_HEAP,
    jvm_options: Sequence[str] = (),
) -> DaemonPlan:
    """The effective properties (written to `state_dir`) and the daemon's command line; `jvm_options` go to the
    JVM before the class path (the local stack sets WIKITIDE_JVM_OPTIONS for `wikitide consume`)."""
    properties = read_properties(properties_file)
    properties.update(
        {
            "executableName": str(processor_executable()),
            "streamName": stream_name,
            "regionName": settings.region,
        }
    )
    properties.setdefault("applicationName", f"{settings.stack_name}-kcl")
    if worker_id:
        properties["workerId"] = worker_id
    if settings.kinesis_endpoint:
        properties["kinesisEndpoint"] = settings.kinesis_endpoint
    if settings.dynamodb_endpoint:
        properties["dynamoDBEndpoint"] = settings.dynamodb_endpoint
    state_dir.mkdir(parents=True, exist_ok=True)
    effective = state_dir / f"kcl-{worker_id or 'worker'}.properties"
    effective.write_text(
        "# written by `wikitide consume` from " + str(properties_file) + "\n"
        + "".join(f"{key} = {value}\n" for key, value in properties.items()),
        encoding="utf-8",
    )
    java = shutil.which("java")
    if java is None:
        raise ConfigError("java (17 or newer) is needed for the KCL MultiLangDaemon and was not found on PATH")
    command = [
        java,
        f"-Xmx{heap}",
        "-XX:+ExitOnOutOfMemoryError",
        *jvm_options,
        "-cp",
        f"{jars_dir()}/*{os.pathsep}{effective.parent}",
        MAIN_CLASS,
        "--properties-file",
        str(effective),
        "--log-configuration",
        str(LOGBACK),
    ]
    return DaemonPlan(properties=properties, properties_path=effective, command=command)
