"""What the Durable extension knows of an app: its orchestrators, activities and entities by registered name, and the
versioning options of host.json.

The extension registers each Durable function under the trigger's own name (`orchestration=`, `activity=`,
`entity_name=`), else the function's name (its binding providers: "Priority for getting the name is
[OrchestrationTrigger], [FunctionName], method name"), and compares names case-insensitively (`FunctionName`). A
call to a name it does not know fails the calling orchestration with `ThrowIfFunctionDoesNotExist`'s message,
which this module words as the extension does (DurableTaskExtension.GetInvalid*FunctionMessage).

Versioning (host.json `extensions.durableTask`): `defaultVersion` is the version of every orchestration started
without one (client starts and sub-orchestrations); `versionMatchStrategy` (None, Strict, CurrentOrOlder: the
default) says which instance versions this app runs, compared by the documented rules (empty is older than any
version, both `System.Version`-like: numerically, else case-insensitively as text); `versionFailureStrategy` says
what happens to the others: Reject (default, the work item waits for a worker that accepts it) or Fail.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from devhost.config import HostJson
from devhost.index import AppIndex

ORCHESTRATOR, ACTIVITY, ENTITY = "orchestrator", "activity", "entity"
_TRIGGERS = {ORCHESTRATOR: "orchestrationTrigger", ACTIVITY: "activityTrigger", ENTITY: "entityTrigger"}
_VERSION = re.compile(r"^\d+(\.\d+){1,3}$|^\d+$")


@dataclass(frozen=True)
class DurableFunction:
    """One Durable function: the name the extension registered it under, its function name, and its handle."""

    registered: str
    function: str
    handle: Callable[..., Any] = field(compare=False)


class FunctionDoesNotExist(Exception):
    """A call to a Durable function the app does not have; the message is the extension's."""


def compare_versions(left: str | None, right: str | None) -> int:
    """The documented version comparison: <0, 0 or >0 as `left` is older, equal or newer than `right`.

    Empty or null versions are equal and older than any defined version; two versions System.Version parses
    (1 to 4 numeric parts; a lone number compares as a number) compare part by part; otherwise case-insensitively
    as text.
    """
    a, b = (left or "").strip(), (right or "").strip()
    if not a or not b:
        return (1 if a else 0) - (1 if b else 0)
    if _VERSION.match(a) and _VERSION.match(b):
        pa, pb = [int(x) for x in a.split(".")], [int(x) for x in b.split(".")]
        return (pa > pb) - (pa < pb)
    la, lb = a.lower(), b.lower()
    return (la > lb) - (la < lb)


@dataclass(frozen=True)
class VersionPolicy:
    """host.json's versioning options for orchestrations."""

    default_version: str | None = None
    match_strategy: str = "currentorolder"
    failure_strategy: str = "reject"

    def refusal(self, instance_version: str | None) -> str | None:
        """Why this app does not run an instance of `instance_version`, in DTFx's words; None when it does.

        With no defaultVersion there is no worker version to compare with, and every instance runs.
        """
        if self.match_strategy == "none" or not self.default_version:
            return None
        order = compare_versions(instance_version, self.default_version)
        shown = instance_version or ""
        if self.match_strategy == "strict" and order != 0:
            return f"The orchestration version '{shown}' does not match the worker version '{self.default_version}'."
        if self.match_strategy == "currentorolder" and order > 0:
            return f"The orchestration version '{shown}' is greater than the worker version '{self.default_version}'."
        return None


@dataclass(frozen=True)
class DurableCatalog:
    """The app's Durable functions by kind and lower-cased registered name, and its version policy."""

    functions: dict[str, dict[str, DurableFunction]]
    versions: VersionPolicy = VersionPolicy()

    @classmethod
    def build(cls, index: AppIndex, host_json: HostJson | None = None) -> DurableCatalog:
        functions: dict[str, dict[str, DurableFunction]] = {}
        for kind, trigger in _TRIGGERS.items():
            functions[kind] = {
                spec.registered_name.lower(): DurableFunction(spec.registered_name, spec.name, spec.func)
                for spec in index.by_type(trigger)
            }
        policy = VersionPolicy()
        if host_json is not None:
            policy = VersionPolicy(
                host_json.default_version, host_json.version_match_strategy, host_json.version_failure_strategy
            )
        return cls(functions, policy)

    def find(self, kind: str, name: str) -> DurableFunction | None:
        return self.functions[kind].get(name.lower())

    def require(self, kind: str, name: str) -> DurableFunction:
        """The function registered as `name`, or FunctionDoesNotExist with the extension's message."""
        found = self.find(kind, name)
        if found is None:
            raise FunctionDoesNotExist(self.missing_message(kind, name))
        return found

    def missing_message(self, kind: str, name: str) -> str:
        known = [f.registered for f in self.functions[kind].values()]
        message = f"The function '{name}' doesn't exist, is disabled, or is not an {kind} function. Additional info: "
        if known:
            listed = "', '".join(known)
            return message + f"The following are the known {kind} functions: '{listed}'."
        return message + f"No {kind} functions are currently registered!"


__all__ = [
    "ACTIVITY",
    "ENTITY",
    "ORCHESTRATOR",
    "DurableCatalog",
    "DurableFunction",
    "FunctionDoesNotExist",
    "VersionPolicy",
    "compare_versions",
]
