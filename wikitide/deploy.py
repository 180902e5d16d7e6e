"""`wikitide deploy`: lint a template, show what will change, then create or update its stack and report the outcome.

The preview is computed here, from the deployed template and parameters against the new ones, because an
emulator's change sets cannot be trusted (moto lists every resource as `Add` and executing one changes nothing).
On AWS the update goes through a change set; against an emulator (a CloudFormation endpoint is set) through
`CreateStack`/`UpdateStack`, with the resource types the emulator does not know taken out first and named.
A failed update is left to CloudFormation's rollback; each failed resource is reported with its reason.
"""

from __future__ import annotations

import json

# Only to run cfn-lint from this install, with a list of arguments.
import subprocess  # nosec B404
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError, WaiterError
from botocore.parsers import ResponseParserError

from wikitide.errors import ConfigError, WikitideError
from wikitide.stack import parse_template

# moto's CloudFormation accepts these and creates nothing (../shared/docs/LOCAL_STACK_FINDINGS.md).
EMULATOR_UNKNOWN_TYPES = (
    "AWS::ElastiCache::", "AWS::KinesisFirehose::", "AWS::CloudWatch::Alarm", "AWS::ApplicationAutoScaling::",
)
CAPABILITIES = ["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM"]
POLL_SECONDS = 2.0


class DeployFailed(WikitideError):
    """The stack did not reach the new template; the message names each failed resource and its reason."""


@dataclass(frozen=True)
class ResourceChange:
    action: str  # "Add", "Remove" or "Modify"
    logical_id: str
    resource_type: str
    properties: tuple[str, ...] = ()  # the top-level properties that differ (Modify)


@dataclass(frozen=True)
class Plan:
    stack_name: str
    exists: bool
    body: str
    parameters: dict[str, str]
    parameter_changes: tuple[tuple[str, str | None, str | None], ...] = ()
    resource_changes: tuple[ResourceChange, ...] = ()
    output_changes: tuple[tuple[str, str], ...] = ()
    skipped: tuple[tuple[str, str], ...] = field(default=())
    # What is deployed now (None for a new stack): an emulator's failed update is put back to it.
    previous_body: str | None = None
    previous_parameters: dict[str, str] = field(default_factory=dict)

    @property
    def has_changes(self) -> bool:
        return not self.exists or bool(self.parameter_changes or self.resource_changes or self.output_changes)


def lint(template: Path) -> str:
    """Run cfn-lint on the template; raise ConfigError on an error, return its warnings (may be empty)."""
    binary = Path(sys.executable).parent / "cfn-lint"
    if not binary.exists():
        raise ConfigError(f"cfn-lint is not installed next to {sys.executable}: run `make lint` once to install it")
    # A fixed executable, arguments as a list, no shell.
    result = subprocess.run(  # nosec B603
        [str(binary), str(template)], capture_output=True, text=True, timeout=300, check=False
    )
    if result.returncode & 2 or result.returncode & 1:
        raise ConfigError(f"cfn-lint found errors in {template}:\n{result.stdout}{result.stderr}")
    return result.stdout.strip()


def without_unknown_types(template: dict[str, Any]) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """The template without the resources an emulator does not know, nor anything that refers to them."""
    resources = dict(template.get("Resources", {}))
    removed = {name for name, r in resources.items() if str(r.get("Type", "")).startswith(EMULATOR_UNKNOWN_TYPES)}
    while True:
        dependent = {name for name, r in resources.items()
                     if name not in removed and _references(r) & removed}
        if not dependent:
            break
        removed |= dependent
    skipped = sorted((name, resources[name]["Type"]) for name in removed)
    kept = {name: r for name, r in resources.items() if name not in removed}
    outputs = {name: o for name, o in template.get("Outputs", {}).items() if not _references(o) & removed}
    result = {**template, "Resources": kept}
    if "Outputs" in template:
        result["Outputs"] = outputs
    return result, skipped


def _references(value: Any) -> set[str]:
    """Logical names `value` refers to through Ref, Fn::GetAtt, Fn::Sub and DependsOn."""
    found: set[str] = set()
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "Ref" and isinstance(item, str):
                found.add(item)
            elif key == "Fn::GetAtt":
                found.add(item[0] if isinstance(item, list) else str(item).split(".")[0])
            elif key == "Fn::Sub":
                text = item[0] if isinstance(item, list) else item
                found |= {part.split("}")[0].split(".")[0] for part in str(text).split("${")[1:]}
                found |= _references(item)
            elif key == "DependsOn":
                found |= {item} if isinstance(item, str) else set(item)
            else:
                found |= _references(item)
    elif isinstance(value, list):
        for item in value:
            found |= _references(item)
    return found


def diff(
    old: dict[str, Any], new: dict[str, Any], old_parameters: Mapping[str, str], new_parameters: Mapping[str, str]
) -> tuple[tuple[tuple[str, str | None, str | None], ...], tuple[ResourceChange, ...], tuple[tuple[str, str], ...]]:
    """Parameter, resource and output changes from the deployed template and parameters to the new ones."""
    parameters = tuple(
        (name, old_parameters.get(name), new_parameters.get(name))
        for name in sorted(set(old_parameters) | set(new_parameters))
        if old_parameters.get(name) != new_parameters.get(name)
    )
    old_resources, new_resources = old.get("Resources", {}), new.get("Resources", {})
    changes: list[ResourceChange] = []
    for name in sorted(set(old_resources) | set(new_resources)):
        before, after = old_resources.get(name), new_resources.get(name)
        if before is None:
            changes.append(ResourceChange("Add", name, after["Type"]))
        elif after is None:
            changes.append(ResourceChange("Remove", name, before["Type"]))
        elif before != after:
            old_props, new_props = before.get("Properties", {}), after.get("Properties", {})
            names = tuple(sorted(k for k in set(old_props) | set(new_props) if old_props.get(k) != new_props.get(k)))
            attributes = tuple(sorted(k for k in set(before) | set(after)
                                      if k not in {"Properties"} and before.get(k) != after.get(k)))
            changes.append(ResourceChange("Modify", name, after["Type"], names + attributes))
    old_outputs, new_outputs = set(old.get("Outputs", {})), set(new.get("Outputs", {}))
    outputs = tuple([("Add", n) for n in sorted(new_outputs - old_outputs)]
                    + [("Remove", n) for n in sorted(old_outputs - new_outputs)])
    return parameters, tuple(changes), outputs


def effective_parameters(
    template: dict[str, Any], given: Mapping[str, str], previous: Mapping[str, str]
) -> dict[str, str]:
    """Each template parameter's value: given, else the deployed one (as `aws cloudformation deploy` keeps it),
    else the template's default. A given name the template does not declare is an error."""
    declared = template.get("Parameters", {})
    unknown = sorted(set(given) - set(declared))
    if unknown:
        raise ConfigError(f"the template has no parameter {', '.join(unknown)} (it has: {', '.join(sorted(declared))})")
    values: dict[str, str] = {}
    for name, spec in declared.items():
        if name in given:
            values[name] = given[name]
        elif name in previous:
            values[name] = previous[name]
        elif "Default" in spec:
            values[name] = str(spec["Default"])
    return values


def plan(
    cloudformation: Any, stack_name: str, template_path: Path, given: Mapping[str, str], *, emulator: bool
) -> Plan:
    new = parse_template(template_path.read_text(encoding="utf-8"))
    skipped: list[tuple[str, str]] = []
    if emulator:
        new, skipped = without_unknown_types(new)
    deployed = _deployed(cloudformation, stack_name)
    old, previous, previous_body = deployed if deployed else ({}, {}, None)
    parameters = effective_parameters(new, given, previous)
    parameter_changes, resource_changes, output_changes = diff(old, new, previous, parameters)
    # The file as written (comments and all), unless types were taken out of it.
    body = json.dumps(new) if skipped else template_path.read_text(encoding="utf-8")
    return Plan(
        stack_name=stack_name, exists=deployed is not None, body=body, parameters=parameters,
        parameter_changes=parameter_changes, resource_changes=resource_changes, output_changes=output_changes,
        skipped=tuple(skipped), previous_body=previous_body, previous_parameters=dict(previous),
    )


def _deployed(cloudformation: Any, stack_name: str) -> tuple[dict[str, Any], dict[str, str], str] | None:
    try:
        stack = cloudformation.describe_stacks(StackName=stack_name)["Stacks"][0]
    except ClientError as exc:
        if "does not exist" in str(exc):
            return None
        raise
    if stack["StackStatus"] == "REVIEW_IN_PROGRESS":
        return None
    body = cloudformation.get_template(StackName=stack_name)["TemplateBody"]
    text = json.dumps(body) if isinstance(body, dict) else body
    template = body if isinstance(body, dict) else parse_template(body)
    previous = {p["ParameterKey"]: p.get("ParameterValue", "") for p in stack.get("Parameters", [])}
    return template, previous, text


def render(plan: Plan) -> str:
    """The plan as the lines a person reads before saying yes."""
    verb = "update" if plan.exists else "create"
    lines = [f"Stack {plan.stack_name}: {verb}"]
    for name, before, after in plan.parameter_changes:
        lines.append(f"  parameter {name}: {before if before is not None else '(none)'} -> "
                     f"{after if after is not None else '(none)'}")
    for change in plan.resource_changes:
        detail = f" ({', '.join(change.properties)})" if change.properties else ""
        sign = {"Add": "+", "Remove": "-", "Modify": "~"}[change.action]
        lines.append(f"  {sign} {change.action} {change.logical_id} [{change.resource_type}]{detail}")
    for action, name in plan.output_changes:
        lines.append(f"  {'+' if action == 'Add' else '-'} {action} output {name}")
    if not plan.has_changes:
        lines.append("  no changes")
    for name, resource_type in plan.skipped:
        lines.append(f"  skipped {name} [{resource_type}]: the emulator's CloudFormation does not create this type")
    return "\n".join(lines)


def apply(
    cloudformation: Any, plan: Plan, *, emulator: bool, echo: Callable[[str], None], timeout: float = 1800.0
) -> str:
    """Create or update the stack and wait for it; return the final status or raise DeployFailed."""
    if not plan.has_changes:
        return "NO_CHANGES"
    params = [{"ParameterKey": k, "ParameterValue": v} for k, v in plan.parameters.items()]
    started = _last_event_id(cloudformation, plan.stack_name) if plan.exists else None
    try:
        if emulator:
            call = cloudformation.update_stack if plan.exists else cloudformation.create_stack
            call(StackName=plan.stack_name, TemplateBody=plan.body, Parameters=params, Capabilities=CAPABILITIES)
        elif not _execute_change_set(cloudformation, plan, params):
            return "NO_CHANGES"
    except (ClientError, BotoCoreError, ResponseParserError) as exc:
        if "No updates are to be performed" in str(exc):
            return "NO_CHANGES"
        # moto answers an update it cannot apply with an HTTP 500 (an HTML page botocore cannot parse), creates
        # none of it, but keeps the new template as the stack's: put the deployed one back, as AWS's rollback would.
        if emulator and plan.previous_body is not None:
            _restore(cloudformation, plan)
            raise DeployFailed(
                f"{plan.stack_name}: the update was refused and rolled back to the deployed template: {exc}"
            ) from exc
        raise DeployFailed(f"{plan.stack_name}: the update was refused, nothing was applied: {exc}") from exc
    return _wait(cloudformation, plan.stack_name, started, echo, timeout)


def _restore(cloudformation: Any, plan: Plan) -> None:
    params = [{"ParameterKey": k, "ParameterValue": v} for k, v in plan.previous_parameters.items()]
    try:
        cloudformation.update_stack(StackName=plan.stack_name, TemplateBody=plan.previous_body, Parameters=params,
                                    Capabilities=CAPABILITIES)
    except (ClientError, BotoCoreError, ResponseParserError) as exc:
        raise DeployFailed(f"{plan.stack_name}: the update was refused, and putting the deployed template back "
                           f"failed too: {exc}") from exc


def _execute_change_set(cloudformation: Any, plan: Plan, params: list[dict[str, str]]) -> bool:
    """Create the change set, wait for it and execute it; False when CloudFormation finds nothing to change
    (a difference the preview shows that changes no resource, such as a description)."""
    name = f"wikitide-{int(time.time())}"
    cloudformation.create_change_set(
        StackName=plan.stack_name, ChangeSetName=name, TemplateBody=plan.body, Parameters=params,
        Capabilities=CAPABILITIES, ChangeSetType="UPDATE" if plan.exists else "CREATE",
    )
    try:
        cloudformation.get_waiter("change_set_create_complete").wait(
            StackName=plan.stack_name, ChangeSetName=name, WaiterConfig={"Delay": 5, "MaxAttempts": 120}
        )
    except WaiterError as exc:
        described = cloudformation.describe_change_set(StackName=plan.stack_name, ChangeSetName=name)
        reason = described.get("StatusReason", "")
        if "didn't contain changes" in reason or "No updates" in reason:
            cloudformation.delete_change_set(StackName=plan.stack_name, ChangeSetName=name)
            return False
        raise DeployFailed(f"{plan.stack_name}: change set {name} failed: {reason or exc}") from exc
    cloudformation.execute_change_set(StackName=plan.stack_name, ChangeSetName=name)
    return True


def _last_event_id(cloudformation: Any, stack_name: str) -> str | None:
    events = cloudformation.describe_stack_events(StackName=stack_name)["StackEvents"]
    return events[0]["EventId"] if events else None


def _new_events(cloudformation: Any, stack_name: str, since: str | None) -> list[dict[str, Any]]:
    """The stack's events after `since`, oldest first."""
    fresh = []
    for event in cloudformation.describe_stack_events(StackName=stack_name)["StackEvents"]:
        if event["EventId"] == since:
            break
        fresh.append(event)
    return fresh[::-1]


def _wait(cloudformation: Any, stack_name: str, since: str | None, echo: Callable[[str], None], timeout: float) -> str:
    deadline = time.monotonic() + timeout
    seen: set[str] = set()
    failures: list[str] = []
    while True:
        for event in _new_events(cloudformation, stack_name, since):
            if event["EventId"] in seen:
                continue
            seen.add(event["EventId"])
            reason = event.get("ResourceStatusReason") or ""
            echo(f"  {event['LogicalResourceId']} {event['ResourceStatus']}{': ' + reason if reason else ''}")
            if event["ResourceStatus"].endswith("_FAILED"):
                failures.append(f"{event['LogicalResourceId']} [{event.get('ResourceType', '?')}]: {reason}")
        status = cloudformation.describe_stacks(StackName=stack_name)["Stacks"][0]["StackStatus"]
        if not status.endswith("_IN_PROGRESS"):
            break
        if time.monotonic() > deadline:
            raise DeployFailed(f"{stack_name} still {status} after {timeout:.0f}s")
        time.sleep(POLL_SECONDS)
    if status.endswith("_COMPLETE") and "ROLLBACK" not in status:
        return str(status)
    detail = "\n".join(f"  {line}" for line in failures) or "  (no resource reported a reason)"
    raise DeployFailed(f"{stack_name} ended in {status}; failed resources:\n{detail}")
