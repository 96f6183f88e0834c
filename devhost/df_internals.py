"""Every use devhost makes of azure-functions-durable's (df's) private parts, behind one version check.

devhost plays the Durable extension's part around df's replay (devhost/durable_adapter.py). The extension learns
which tasks an episode opened by replaying df's actions through DTFx; devhost reads them from df's own state
instead: the context's `open_tasks`, a retried task's `RetryAbleTask` (`parent`, `actions`,
`is_waiting_on_timer`), the `$OutOfProcData$` text df appends to the exception it raises when an orchestrator
fails, and the `_input_expected_type` the registered handle sets before replaying. None of those are df's public
API, so they are touched here only, and this module refuses to load under a df release it was not written for:
an upgrade fails at start naming both versions, instead of scheduling the wrong tasks later.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from typing import Any

WRITTEN_FOR = "1.7"  # the azure-functions-durable minor version whose private names this module uses
DISTRIBUTION = "azure-functions-durable"


class DfVersionError(RuntimeError):
    """The installed azure-functions-durable is not the version devhost's Durable bridge was written against."""


def check_version(installed: str) -> None:
    """Fail with what to do unless `installed` is a WRITTEN_FOR.x release of azure-functions-durable."""
    if installed.split(".")[:2] != WRITTEN_FOR.split("."):
        raise DfVersionError(
            f"devhost needs {DISTRIBUTION} {WRITTEN_FOR}.x, but {DISTRIBUTION} {installed} is installed: "
            f"devhost/df_internals.py uses private parts of {DISTRIBUTION} {WRITTEN_FOR} (the orchestration "
            f"context's open tasks, retry tasks, the $OutOfProcData$ error text). Install "
            f"{DISTRIBUTION}=={WRITTEN_FOR}.* (requirements.txt pins it), or re-check that module against the new "
            "version and update WRITTEN_FOR."
        )


def _installed_version() -> str:
    try:
        return version(DISTRIBUTION)
    except PackageNotFoundError:
        return "(not installed)"


check_version(_installed_version())

# What df appends to the exception a failing orchestrator raises (TaskOrchestrationExecutor.get_orchestrator_state_str)
OUT_OF_PROC_MARKER = "\n\n$OutOfProcData$:"


@dataclass
class Episode:
    """One run of df's replay: its `OrchestratorState` JSON and the context it ran with (for the new tasks)."""

    state: dict[str, Any]
    context: Any
    failed: str | None  # the orchestrator's error (df's `error`), when it raised


@dataclass(frozen=True)
class OpenedTask:
    """New work of an episode: a task df opened that has no event in the history yet, by its DTFx task id, or a
    signal (`signal` = its position among the execution's signals; signals open no task).

    `retry` is None for a plain task; for the internal tasks of `call_*_with_retry`, "timer" (the wait df opens after
    a failed attempt) or "attempt" (the next try); `action` is then the retried action.
    """

    task_id: int
    action: dict[str, Any]
    retry: str | None = None
    signal: int | None = None


def orchestrator_function(handle: Callable[..., Any]) -> Callable[..., Any] | None:
    """The generator function behind the handle DFApp registered for an orchestrator (None if it is not one)."""
    return getattr(handle, "orchestrator_function", None)


def run_orchestrator(handle: Callable[..., Any], body: str) -> Episode:
    """df's replay of one episode, as the registered handle (`Orchestrator.create(fn)`) runs it, keeping the context.

    Inlined so devhost can read df's open tasks afterwards (the extension learns the same ids from DTFx's replay).
    """
    from azure.durable_functions.models import DurableOrchestrationContext
    from azure.durable_functions.orchestrator import Orchestrator

    generator_function = orchestrator_function(handle)
    if generator_function is None:
        raise TypeError(f"{handle!r} is not a df orchestrator handle (no orchestrator_function)")
    ctx = DurableOrchestrationContext.from_json(body)
    ctx._input_expected_type = getattr(handle, "_df_input_type", None)  # as the handle does
    try:
        state_text = Orchestrator(generator_function).handle(ctx)
    except Exception as err:
        text = str(err)
        if OUT_OF_PROC_MARKER not in text:
            raise
        error, _, state = text.partition(OUT_OF_PROC_MARKER)
        parsed = json.loads(state)
        return Episode(parsed, ctx, parsed.get("error") or error)
    return Episode(json.loads(state_text), ctx, None)


def _action_json(actions: Any) -> dict[str, Any]:
    action = actions[0] if isinstance(actions, list) else actions
    return dict(action.to_json())


def new_work(episode: Episode, scheduled_ids: set[int], past_signals: int) -> list[OpenedTask]:
    """The tasks df opened whose ids the history does not hold yet, and the signals past the `past_signals` the
    history holds, in the order df scheduled them: the order the extension's shim hands them to DTFx, which is
    the order an entity receives a signal and a call sent to it one after the other."""
    from azure.durable_functions.models.actions.ActionType import ActionType
    from azure.durable_functions.models.actions.NoOpAction import NoOpAction
    from azure.durable_functions.models.Task import AtomicTask, RetryAbleTask

    opened = sorted(
        (
            (key, task)
            for key, task in episode.context.open_tasks.items()
            if isinstance(key, int) and isinstance(task, AtomicTask) and key not in scheduled_ids
        ),
        key=lambda pair: pair[0],
    )
    by_action: dict[int, OpenedTask] = {}
    internal: list[OpenedTask] = []
    for task_id, task in opened:
        raw = task.action_repr[0] if isinstance(task.action_repr, list) else task.action_repr
        if not isinstance(raw, NoOpAction):
            by_action[id(raw)] = OpenedTask(task_id, _action_json(raw))
            continue
        parent = task.parent
        if not isinstance(parent, RetryAbleTask):
            raise RuntimeError(f"df opened an internal task {task_id} devhost cannot map (parent {parent!r})")
        retried = _action_json(parent.actions)
        internal.append(OpenedTask(task_id, retried, "timer" if parent.is_waiting_on_timer else "attempt"))
    ordered: list[OpenedTask] = []
    signals = 0
    for action in _leaf_objects(episode.context._actions):
        if id(action) in by_action:
            ordered.append(by_action.pop(id(action)))
        elif action.action_type == ActionType.SIGNAL_ENTITY:
            if signals >= past_signals:
                ordered.append(OpenedTask(-1, _action_json(action), signal=signals))
            signals += 1
    # The retry tasks df opens internally have no action of their own; ids keep them in DTFx's order.
    return ordered + sorted([*by_action.values(), *internal], key=lambda task: task.task_id)


def _leaf_objects(actions: Any) -> Iterable[Any]:
    if isinstance(actions, list):
        for item in actions:
            yield from _leaf_objects(item)
    elif hasattr(actions, "compound_tasks"):  # WhenAll / WhenAny
        yield from _leaf_objects(actions.compound_tasks)
    else:
        yield actions


def leaf_actions(actions: Any) -> Iterable[dict[str, Any]]:
    """The atomic actions of df's `OrchestratorState.actions` (V3: a flat list; WhenAll/WhenAny as compounds)."""
    if isinstance(actions, list):
        for item in actions:
            yield from leaf_actions(item)
    elif isinstance(actions, dict):
        if "compoundActions" in actions:
            yield from leaf_actions(actions["compoundActions"])
        else:
            yield actions


__all__ = [
    "OUT_OF_PROC_MARKER",
    "WRITTEN_FOR",
    "DfVersionError",
    "Episode",
    "OpenedTask",
    "check_version",
    "leaf_actions",
    "new_work",
    "orchestrator_function",
    "run_orchestrator",
]
