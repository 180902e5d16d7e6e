"""Where a running local stack says how to reach it, so that `wikitide` commands in another terminal find it.

`wikitide local up` writes `<state dir>/local-stack.json` once the stack is provisioned (its endpoints, the
stack name and the launcher's pid) and removes it when it stops. A command run without any endpoint of its own
(no `AWS_ENDPOINT_URL*`, no `WIKITIDE_STACK` in the environment) takes the variables from there while that pid is
alive; `wikitide local env` prints them for other tools (the AWS CLI reads the same variables).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

FILE_NAME = "local-stack.json"
# Variables that say the caller chose its own target: the environment is then used as it is.
OWN_TARGET_PREFIXES = ("AWS_ENDPOINT_URL", "WIKITIDE_STACK")


@dataclass(frozen=True)
class Registration:
    path: Path
    pid: int
    env: dict[str, str]
    api_url: str


def register(state_dir: Path, env: Mapping[str, str], api_url: str) -> Path:
    path = state_dir / FILE_NAME
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps({"pid": os.getpid(), "env": dict(env), "api_url": api_url}, indent=2))
    temporary.replace(path)
    return path


def unregister(state_dir: Path) -> None:
    path = state_dir / FILE_NAME
    try:
        registration = _read(path)
    except (OSError, ValueError):
        return
    if registration.pid == os.getpid():
        path.unlink(missing_ok=True)


def running(state_dir: Path) -> Registration | None:
    """The stack registered in `state_dir` if its launcher is still alive, else None."""
    try:
        registration = _read(state_dir / FILE_NAME)
    except (OSError, ValueError):
        return None
    return registration if _alive(registration.pid) else None


def chose_own_target(env: Mapping[str, str]) -> bool:
    return any(name.startswith(OWN_TARGET_PREFIXES) for name in env)


def shell_exports(registration: Registration) -> str:
    import shlex

    return "".join(f"export {name}={shlex.quote(value)}\n" for name, value in sorted(registration.env.items()))


def _read(path: Path) -> Registration:
    data = json.loads(path.read_text())
    env = data["env"]
    if not isinstance(data["pid"], int) or not isinstance(env, dict):
        raise ValueError(f"{path} is not a local stack registration")
    return Registration(path, data["pid"], {str(k): str(v) for k, v in env.items()}, str(data["api_url"]))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
