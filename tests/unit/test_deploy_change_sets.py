"""`wikitide deploy`'s path on AWS (no emulator endpoint): a change set, executed, then the stack's events until it
settles. AWS's CloudFormation cannot run here, so a fake that answers the calls the way CloudFormation's API does
(change set statuses, events newest first, a rollback after a failed resource) stands in for it."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from botocore.exceptions import WaiterError

from wikitide import deploy


@dataclass
class FakeCloudFormation:
    """A stack whose update, once its change set is executed, goes through `timeline`: each status the stack
    passes, with the resource events CloudFormation adds on the way (logical id, status, reason)."""

    timeline: list[tuple[str, list[tuple[str, str, str]]]]
    change_set_status: tuple[str, str] = ("CREATE_COMPLETE", "")
    calls: list[str] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)  # newest first, as DescribeStackEvents pages them
    status: str = "UPDATE_COMPLETE"
    _ids: Iterator[int] = field(default_factory=itertools.count)
    _steps: Iterator[tuple[str, list[tuple[str, str, str]]]] | None = None

    def __post_init__(self) -> None:
        self._event("Stack", "UPDATE_COMPLETE", "")  # the last deployment's

    def _event(self, logical_id: str, status: str, reason: str) -> None:
        event = {"EventId": f"e{next(self._ids)}", "LogicalResourceId": logical_id, "ResourceStatus": status,
                 "ResourceType": "AWS::DynamoDB::Table" if logical_id != "Stack" else "AWS::CloudFormation::Stack"}
        if reason:
            event["ResourceStatusReason"] = reason
        self.events.insert(0, event)

    def create_change_set(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(f"create_change_set {kwargs['ChangeSetType']}")
        return {"Id": "cs"}

    def get_waiter(self, name: str) -> Any:
        assert name == "change_set_create_complete"
        status, reason = self.change_set_status
        fake = self

        class Waiter:
            def wait(self, **_: Any) -> None:
                fake.calls.append("wait for the change set")
                if status == "FAILED":
                    raise WaiterError(name, "Waiter encountered a terminal failure state", {"Status": status})

        return Waiter()

    def describe_change_set(self, **_: Any) -> dict[str, Any]:
        status, reason = self.change_set_status
        return {"Status": status, "StatusReason": reason}

    def delete_change_set(self, **_: Any) -> None:
        self.calls.append("delete_change_set")

    def execute_change_set(self, **_: Any) -> None:
        self.calls.append("execute_change_set")
        self._steps = iter(self.timeline)
        self._advance()

    def _advance(self) -> None:
        assert self._steps is not None
        step = next(self._steps, None)
        if step is not None:
            self.status, events = step
            for logical_id, status, reason in events:
                self._event(logical_id, status, reason)

    def describe_stack_events(self, **_: Any) -> dict[str, Any]:
        return {"StackEvents": list(self.events)}

    def describe_stacks(self, **_: Any) -> dict[str, Any]:
        answer = {"Stacks": [{"StackStatus": self.status}]}
        if self._steps is not None:
            self._advance()  # the stack moves on between two looks
        return answer

    def update_stack(self, **_: Any) -> None:  # the emulator's path: never taken on AWS
        raise AssertionError("UpdateStack called on AWS")

    create_stack = update_stack


PLAN = deploy.Plan("wikitide-staging", True, "{}", {"ShardCount": "4"}, (("ShardCount", "2", "4"),))


@pytest.fixture(autouse=True)
def no_sleep(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(deploy, "POLL_SECONDS", 0.0)


def test_an_update_goes_through_a_change_set_and_prints_the_events_as_they_come() -> None:
    fake = FakeCloudFormation([
        ("UPDATE_IN_PROGRESS", [("Stack", "UPDATE_IN_PROGRESS", "User Initiated")]),
        ("UPDATE_IN_PROGRESS", [("EventsTable", "UPDATE_IN_PROGRESS", ""), ("EventsTable", "UPDATE_COMPLETE", "")]),
        ("UPDATE_COMPLETE", [("Stack", "UPDATE_COMPLETE", "")]),
    ])
    printed: list[str] = []
    assert deploy.apply(fake, PLAN, emulator=False, echo=printed.append) == "UPDATE_COMPLETE"
    assert fake.calls == ["create_change_set UPDATE", "wait for the change set", "execute_change_set"]
    assert printed == ["  Stack UPDATE_IN_PROGRESS: User Initiated", "  EventsTable UPDATE_IN_PROGRESS",
                       "  EventsTable UPDATE_COMPLETE", "  Stack UPDATE_COMPLETE"]


def test_a_failed_resource_is_named_with_its_reason_after_the_rollback() -> None:
    reason = "Resource handler returned message: \"One or more parameter values were invalid\""
    fake = FakeCloudFormation([
        ("UPDATE_IN_PROGRESS", [("Stack", "UPDATE_IN_PROGRESS", "User Initiated"),
                                ("CountersTable", "UPDATE_FAILED", reason)]),
        ("UPDATE_ROLLBACK_IN_PROGRESS", [("Stack", "UPDATE_ROLLBACK_IN_PROGRESS",
                                          "The following resource(s) failed to update: [CountersTable].")]),
        ("UPDATE_ROLLBACK_COMPLETE", [("CountersTable", "UPDATE_COMPLETE", ""),
                                      ("Stack", "UPDATE_ROLLBACK_COMPLETE", "")]),
    ])
    with pytest.raises(deploy.DeployFailed) as failed:
        deploy.apply(fake, PLAN, emulator=False, echo=lambda _: None)
    message = str(failed.value)
    assert "wikitide-staging ended in UPDATE_ROLLBACK_COMPLETE" in message
    assert f"CountersTable [AWS::DynamoDB::Table]: {reason}" in message
    assert "execute_change_set" in fake.calls


def test_a_change_set_with_nothing_to_change_is_no_change_and_is_deleted() -> None:
    fake = FakeCloudFormation([], change_set_status=(
        "FAILED", "The submitted information didn't contain changes. Submit different information to create a "
                  "change set."))
    assert deploy.apply(fake, PLAN, emulator=False, echo=lambda _: None) == "NO_CHANGES"
    assert fake.calls == ["create_change_set UPDATE", "wait for the change set", "delete_change_set"]


def test_a_change_set_that_fails_to_be_created_is_reported_and_nothing_is_executed() -> None:
    fake = FakeCloudFormation([], change_set_status=("FAILED", "Template format error: Unresolved resource "
                                                               "dependencies [Missing] in the Resources block"))
    with pytest.raises(deploy.DeployFailed, match="Unresolved resource dependencies"):
        deploy.apply(fake, PLAN, emulator=False, echo=lambda _: None)
    assert "execute_change_set" not in fake.calls


def test_a_new_stack_is_created_through_a_change_set_of_type_create() -> None:
    fake = FakeCloudFormation([("CREATE_IN_PROGRESS", [("Stack", "CREATE_IN_PROGRESS", "User Initiated")]),
                               ("CREATE_COMPLETE", [("Stack", "CREATE_COMPLETE", "")])])
    new = deploy.Plan("wikitide-staging", False, "{}", {})
    assert deploy.apply(fake, new, emulator=False, echo=lambda _: None) == "CREATE_COMPLETE"
    assert fake.calls[0] == "create_change_set CREATE"
