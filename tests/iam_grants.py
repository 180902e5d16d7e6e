"""What a task role of `cloudformation/compute.yaml` allows, in terms a test can hold the code's calls against.

A role's resources are spelled with the data layer's exports; they are named here by the export (`StreamArn`,
`table:EventsTableName`, `index:EventsTableName`) or, for the KCL's tables that the data layer does not export, by
their suffix (`table:kcl`: the lease table, `${DataStackName}-kcl`). Calls recorded from boto3 clients are named
the same way by `CallRecorder`, given which local name is which resource.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wikitide import stack

COMPUTE = Path(stack.TEMPLATE_PATH).parent / "compute.yaml"
_EXPORT = re.compile(r"^\$\{DataStackName\}-(\w+)$")
_OWN_TABLE = re.compile(r":table/\$\{DataStackName\}-([\w-]+)(/index/\*)?$")


def _resource_name(resource: Any) -> str:
    """The name this module gives a statement's resource."""
    if resource == "*":
        return "*"
    if isinstance(resource, dict) and "Fn::ImportValue" in resource:
        found = _EXPORT.match(resource["Fn::ImportValue"]["Fn::Sub"])
        if found:
            return found.group(1)
    if isinstance(resource, dict) and "Fn::Sub" in resource:
        sub = resource["Fn::Sub"]
        if isinstance(sub, list):
            text, values = sub
            imported = values.get("Table", {}).get("Fn::ImportValue", {}).get("Fn::Sub", "")
            export = _EXPORT.match(imported)
            if export and text.endswith(":table/${Table}"):
                return f"table:{export.group(1)}"
            if export and text.endswith(":table/${Table}/index/*"):
                return f"index:{export.group(1)}"
        else:
            own = _OWN_TABLE.search(sub)
            if own:
                return f"{'index' if own.group(2) else 'table'}:{own.group(1)}"
    return f"unnamed:{resource!r}"


def grants(role: str, template_path: Path = COMPUTE) -> set[tuple[str, str]]:
    """(action, resource name) pairs the role's inline policies allow."""
    template = stack.load_template(template_path)
    allowed: set[tuple[str, str]] = set()
    for policy in template["Resources"][role]["Properties"]["Policies"]:
        for statement in policy["PolicyDocument"]["Statement"]:
            if statement.get("Effect") != "Allow":
                continue
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
            allowed |= {(action, _resource_name(resource)) for action in actions for resource in resources}
    return allowed


@dataclass
class CallRecorder:
    """Records the (action, resource name) of every call of the boto3 clients it is attached to.

    `names` maps a local stream or table name to the name `grants` gives it."""

    names: Mapping[str, str]
    calls: set[tuple[str, str]] = field(default_factory=set)

    def attach(self, client: Any) -> Any:
        client.meta.events.register("before-parameter-build", self._record)
        return client

    def _record(self, model: Any, params: Mapping[str, Any], **_: Any) -> None:
        prefix = model.service_model.signing_name
        target = params.get("StreamName") or params.get("TableName") or "?"
        name = self.names.get(str(target), f"unknown:{target}")
        if "IndexName" in params and name.startswith("table:"):
            name = "index:" + name.removeprefix("table:")
        self.calls.add((f"{prefix}:{model.name}", name))


def not_granted(calls: set[tuple[str, str]], allowed: set[tuple[str, str]]) -> list[tuple[str, str]]:
    return sorted(call for call in calls if call not in allowed and (call[0], "*") not in allowed)
