"""The MultiLangDaemon's command line: the JVM options the local stack asks for reach the JVM, and this JVM
accepts them."""

from __future__ import annotations

import subprocess
from pathlib import Path

from click.testing import CliRunner

from kcl_app.daemon import MAIN_CLASS, plan_daemon
from wikitide import cli
from wikitide.localstack.services import LOCAL_JVM_OPTIONS, Ports, endpoint_env
from wikitide.settings import Settings

REPO = Path(__file__).resolve().parents[2]


def _settings() -> Settings:
    return Settings.from_env({"WIKITIDE_STACK": "wt-plan", "AWS_REGION": "us-east-1",
                              "AWS_ENDPOINT_URL_KINESIS": "http://127.0.0.1:1"})


def test_jvm_options_come_after_the_heap_and_before_the_class_path(tmp_path: Path) -> None:
    plan = plan_daemon(_settings(), REPO / "properties" / "local.properties", "stream", tmp_path,
                       worker_id="w1", heap="256m", jvm_options=("-XX:+UseSerialGC", "-Dx=1"))
    command = plan.command
    assert command[1:5] == ["-Xmx256m", "-XX:+ExitOnOutOfMemoryError", "-XX:+UseSerialGC", "-Dx=1"]
    assert command[5] == "-cp" and command[7] == MAIN_CLASS
    assert plan.properties["workerId"] == "w1" and plan.properties["kinesisEndpoint"] == "http://127.0.0.1:1"
    assert plan.properties_path.read_text(encoding="utf-8").count("streamName = stream") == 1


def test_without_options_the_jvm_keeps_its_defaults(tmp_path: Path) -> None:
    plan = plan_daemon(_settings(), REPO / "properties" / "aws.properties", "stream", tmp_path)
    assert not [arg for arg in plan.command if arg.startswith("-XX:") and arg != "-XX:+ExitOnOutOfMemoryError"]


def test_the_local_stack_gives_consume_its_jvm_options_and_this_jvm_takes_them() -> None:
    env = endpoint_env(Ports(), "wt-plan")
    seen: list[tuple[str, ...]] = []

    def fake_consume(**kwargs: object) -> None:
        seen.append(kwargs["jvm_options"])  # type: ignore[arg-type]

    command = cli.cli.get_command(None, "consume")  # type: ignore[arg-type]
    assert command is not None
    original = command.callback
    command.callback = fake_consume
    try:
        result = CliRunner().invoke(cli.cli, ["consume", "--properties", str(REPO / "properties" / "local.properties")],
                                    env=env)
    finally:
        command.callback = original
    assert result.exit_code == 0, result.output
    assert seen == [LOCAL_JVM_OPTIONS]
    java = subprocess.run(["java", *LOCAL_JVM_OPTIONS, "-version"], capture_output=True, text=True, timeout=60)
    assert java.returncode == 0, java.stderr
