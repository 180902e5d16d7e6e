"""The KCL ignores a property key it does not know, silently. This asks KCL 3.1.3's own configurator (through
jshell, on the installed jars) what each numeric or boolean key of the fleet's properties became."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from kcl_app.daemon import jars_dir, read_properties
from tests.fleet.harness import write_fleet_properties

pytestmark = pytest.mark.integration

# Read by MultiLangDaemonConfig itself, not by the configurator.
DAEMON_KEYS = {"maxActiveThreads"}
MISSPELLED = "leaseAssignmentIntervalMilis"


def _bound_values(properties: Path, keys: list[str]) -> dict[str, str]:
    getters = "".join(
        f'System.out.println("BOUND {key}=" + c.get{key[0].upper()}{key[1:]}());\n' for key in keys
    )
    script = (
        "import software.amazon.kinesis.multilang.config.*;\n"
        "var p = new java.util.Properties();\n"
        f'p.load(new java.io.FileReader("{properties}"));\n'
        "var c = new KinesisClientLibConfigurator().getConfiguration(p);\n"
        f"{getters}/exit\n"
    )
    jshell = shutil.which("jshell")
    if jshell is None:
        pytest.skip("jshell (a JDK) is needed to ask the KCL's configurator")
    classpath = ":".join(str(jar) for jar in sorted(jars_dir().glob("*.jar")))
    done = subprocess.run(
        [jshell, "--class-path", classpath, "-R-Dlogback.configurationFile=/dev/null", "-"],
        input=script, capture_output=True, text=True, timeout=120, check=False,
    )
    return dict(re.findall(r"^BOUND (\w+)=(\S+)$", done.stdout, flags=re.MULTILINE))


def test_every_numeric_or_boolean_fleet_key_is_bound_by_the_kcl(tmp_path: Path) -> None:
    path = write_fleet_properties(tmp_path / "fleet.properties")
    with path.open("a", encoding="utf-8") as extra:
        extra.write(f"applicationName = check\nstreamName = check\n{MISSPELLED} = 777\n")
    wanted = {k: v for k, v in read_properties(path).items() 
              if (v.isdigit() or v in ("true", "false")) and k not in DAEMON_KEYS}
    bound = _bound_values(path, list(wanted))
    assert MISSPELLED not in bound  # the control: a key the KCL does not have has no getter either
    del wanted[MISSPELLED]
    assert {"leaseAssignmentIntervalMillis", "workerMetricsReporterFreqInMillis", "failoverTimeMillis",
            "isGracefulLeaseHandoffEnabled"} <= set(wanted)
    assert bound == wanted
