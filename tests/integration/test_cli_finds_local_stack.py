"""A `wikitide` command in another shell finds the local stack that `make up` runs, and one that reaches no
stack says so in one line. The commands run as users run them: `python -m wikitide` in a child process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from wikitide.localstack import registry

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


def _bare_env(state_dir: Path) -> dict[str, str]:
    """The environment of a new shell with no AWS set-up at all: no endpoints, no credentials, no instance
    metadata to ask."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "WIKITIDE_", "REDIS_URL"))}
    return {**env, "WIKITIDE_STATE_DIR": str(state_dir), "AWS_SHARED_CREDENTIALS_FILE": str(state_dir / "none"),
            "AWS_CONFIG_FILE": str(state_dir / "none"), "AWS_EC2_METADATA_DISABLED": "true"}


def _wikitide(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "wikitide", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=120, check=False)


def test_a_command_with_no_stack_to_reach_says_so_in_one_line(tmp_path: Path) -> None:
    answer = _wikitide(_bare_env(tmp_path), "producer-status")
    assert answer.returncode == 2, answer
    assert "Traceback" not in answer.stderr
    lines = answer.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("wikitide: ") and "make up" in lines[0], answer.stderr

    env_answer = _wikitide(_bare_env(tmp_path), "local", "env")
    assert env_answer.returncode != 0 and "no local stack is running" in env_answer.stderr


def test_commands_in_another_shell_use_the_running_local_stack(local_stack: Any, tmp_path: Path) -> None:
    from wikitide import stack
    from wikitide.aws import make_client
    from wikitide.settings import Settings

    settings = Settings.from_env()
    name = f"wt-cli-{uuid.uuid4().hex[:8]}"
    provisioned = stack.deploy_local(make_client(settings, "cloudformation"), make_client(settings, "kinesis"), name)
    stack_env = {**local_stack.env, "WIKITIDE_STACK": name}
    registry.register(tmp_path, stack_env, "http://127.0.0.1:1")  # this process stands for the launcher
    try:
        env = _bare_env(tmp_path)
        answer = _wikitide(env, "producer-status", "--source", "replay:nothing-yet")
        # The stack was reached: its (empty) producer state table answered, by name.
        assert answer.returncode == 2 and provisioned.producer_state_table in answer.stderr, answer.stderr
        assert "no saved producer position" in answer.stderr

        exports = _wikitide(env, "local", "env")
        assert exports.returncode == 0, exports.stderr
        assert f"export WIKITIDE_STACK={name}\n" in exports.stdout
        assert f"export AWS_ENDPOINT_URL_DYNAMODB={local_stack.env['AWS_ENDPOINT_URL_DYNAMODB']}\n" in exports.stdout

        # Endpoints of the caller's own win over the registration.
        own = _wikitide({**env, "WIKITIDE_STACK": "elsewhere", **{
            k: v for k, v in local_stack.env.items() if k.startswith("AWS_")}}, "producer-status")
        assert own.returncode == 2 and "'elsewhere' not found" in own.stderr, own.stderr
    finally:
        registry.unregister(tmp_path)
    assert registry.running(tmp_path) is None


def test_a_registration_left_by_a_launcher_that_died_is_ignored(tmp_path: Path) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          check=True)
    registration = {"pid": int(dead.stdout), "env": {"WIKITIDE_STACK": "gone"}, "api_url": "http://127.0.0.1:1"}
    (tmp_path / registry.FILE_NAME).write_text(json.dumps(registration))
    assert registry.running(tmp_path) is None
    (tmp_path / registry.FILE_NAME).write_text("not json")
    assert registry.running(tmp_path) is None
