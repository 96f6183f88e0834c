"""Azure ML compute instances through `azure-ai-ml`'s MLClient: list, read state, start a stop (no waiting).

The SDK is imported lazily (about 1.7 s and 100 MB); one MLClient per workspace per process is cached.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, NoReturn

from shared.azureml import ml_client
from shared.errors import ComputeError
from shared.payloads import Payload
from shared.settings import Workspace

log = logging.getLogger(__name__)

# States an instance passes through on its way somewhere: a monitor keeps waiting while it shows one.
TRANSITIONAL_STATES = frozenset(
    {"Stopping", "Starting", "Restarting", "Creating", "SettingUp", "UserSettingUp", "Unknown"}
)
RETRYABLE_CLIENT_STATUSES = frozenset({408, 429})  # the 4xx answers that mean "try again later"

# `retryable`: a 429/5xx outlived the SDK's retries (set by the activity; the orchestration sends it again later).
StopStatus = Literal[
    "stopping", "already_stopped", "starting", "already_running", "not_found", "in_transition", "failed", "retryable"
]


class RetryableComputeError(ComputeError):
    """ARM answered 429 or 5xx (or did not answer) even after the SDK's own retries: try again later."""


class ComputeNotFoundError(ComputeError):
    """The compute instance (or its workspace) does not exist, e.g. it was deleted meanwhile."""


@dataclass(frozen=True)
class ComputeInstance(Payload):
    """What the shutdown policy and report need to know about one compute instance."""

    workspace: str  # Workspace.key: subscription/resource-group/workspace
    name: str
    state: str
    tags: dict[str, str] = field(default_factory=dict)
    last_operation: dict[str, str] | None = None  # operation_name, operation_status, operation_time
    idle_shutdown_minutes: int | None = None
    size: str | None = None
    # ARM's `properties.properties.createdBy` ({user_name, user_org_id, user_id}): who is told before a stop when
    # the instance has no owner tag. azure-ai-ml's ComputeInstance entity drops it, so it is read from the REST model.
    created_by: dict[str, str] | None = None


@dataclass(frozen=True)
class StopOutcome(Payload):
    """Result of asking ARM to stop one instance; `stopping` means the 202 was accepted, not that it stopped."""

    status: StopStatus
    state_before: str | None
    message: str = ""


def _enum_value(value: Any) -> str:
    # The SDK's states are str enums whose str() is "ComputeInstanceState.RUNNING": compare the value.
    return str(getattr(value, "value", value)) if value is not None else "Unknown"


def _http_status(err: BaseException) -> int | None:
    status = getattr(err, "status_code", None)
    if status is None:
        response = getattr(err, "response", None)
        status = getattr(response, "status_code", None)
    return int(status) if isinstance(status, int) else None


def _arm_message(err: BaseException) -> str:
    """ARM's own error message (e.g. 'StopCompute is not allowed when ComputeInstance disk is full.')."""
    error = getattr(err, "error", None)
    message = getattr(error, "message", None) if error is not None else None
    if message:
        code = getattr(error, "code", None)
        return f"{code}: {message}" if code else str(message)
    return str(getattr(err, "reason", None) or err).splitlines()[0]


def _raise_unexpected(err: Exception, what: str) -> NoReturn:
    """Translate an SDK error that is not a classified outcome: retryable (429/5xx/no answer) or not."""
    from azure.core.exceptions import ClientAuthenticationError, HttpResponseError, ServiceRequestError

    status = _http_status(err)
    if isinstance(err, ServiceRequestError) or (
        isinstance(err, HttpResponseError) and (status in RETRYABLE_CLIENT_STATUSES or (status or 0) >= 500)
    ):
        raise RetryableComputeError(f"{what}: ARM answered {status or 'nothing'}: {_arm_message(err)}") from err
    if isinstance(err, ClientAuthenticationError):
        raise ComputeError(f"{what}: not authorized ({status}): {_arm_message(err)}") from err
    if isinstance(err, HttpResponseError):
        raise ComputeError(f"{what}: ARM answered {status}: {_arm_message(err)}") from err
    raise ComputeError(f"{what}: {type(err).__name__}: {err}") from err


def _snake(key: str) -> str:
    # The SDK hands lastOperation over with ARM's camelCase keys; the app's payloads use snake_case.
    return re.sub(r"(?<!^)(?=[A-Z])", "_", key).lower()


def _created_by(rest: Any) -> dict[str, str] | None:
    """`createdBy` of a compute resource's REST model as {user_name, user_org_id, user_id} (only the keys given)."""
    inner = getattr(getattr(rest, "properties", None), "properties", None)
    creator = getattr(inner, "created_by", None)
    if creator is None:
        return None
    fields = {key: getattr(creator, key, None) for key in ("user_name", "user_org_id", "user_id")}
    given = {key: str(value) for key, value in fields.items() if value}
    return given or None


def _to_instance(workspace: Workspace, compute: Any, rest: Any = None) -> ComputeInstance:
    last = getattr(compute, "last_operation", None)
    return ComputeInstance(
        workspace=workspace.key,
        name=str(compute.name),
        state=_enum_value(getattr(compute, "state", None)),
        tags={str(k): str(v) for k, v in (compute.tags or {}).items()},
        last_operation={_snake(str(k)): _enum_value(v) for k, v in last.items()} if last else None,
        idle_shutdown_minutes=getattr(compute, "idle_time_before_shutdown_minutes", None),
        size=getattr(compute, "size", None),
        created_by=_created_by(rest),
    )


def _is_instance(compute: Any) -> bool:
    return str(getattr(compute, "type", "")).lower() == "computeinstance"


def list_instances(workspace: Workspace, env: Mapping[str, str] | None = None) -> list[ComputeInstance]:
    """Every compute instance of the workspace (other compute types are left out), following ARM's paging."""
    from azure.ai.ml.entities import Compute

    client = ml_client(workspace, env)
    try:
        # The generated operation with the SDK's own conversion, keeping each REST model beside its entity (what
        # MLClient.compute.list does, converting each once, not twice): the entity drops `createdBy`.
        pairs = list(
            client.compute._operation.list(
                workspace.resource_group,
                workspace.name,
                cls=lambda page: [(rest, Compute._from_rest_object(rest)) for rest in page],
            )
        )
    except Exception as err:
        if _http_status(err) == 404:
            raise ComputeNotFoundError(f"workspace {workspace.key!r} was not found") from err
        _raise_unexpected(err, f"listing compute instances of {workspace.key}")
    return [_to_instance(workspace, compute, rest) for rest, compute in pairs if _is_instance(compute)]


def get_instance(workspace: Workspace, name: str, env: Mapping[str, str] | None = None) -> ComputeInstance:
    """Current view of one instance; raises ComputeNotFoundError when it does not exist."""
    from azure.ai.ml.entities import Compute
    from azure.core.exceptions import ResourceNotFoundError

    client = ml_client(workspace, env)
    try:
        rest = client.compute._operation.get(workspace.resource_group, workspace.name, name)
    except ResourceNotFoundError as err:
        raise ComputeNotFoundError(f"compute instance {name!r} not found in {workspace.key}") from err
    except Exception as err:
        _raise_unexpected(err, f"reading compute instance {name} of {workspace.key}")
    return _to_instance(workspace, Compute._from_rest_object(rest), rest)


def get_state(workspace: Workspace, name: str, env: Mapping[str, str] | None = None) -> str:
    return get_instance(workspace, name, env).state


def begin_stop(
    workspace: Workspace, name: str, env: Mapping[str, str] | None = None, state: str | None = None
) -> StopOutcome:
    """Ask ARM to stop (202 accepted) and return at once; the caller confirms `Stopped` later (by listing).

    `state` is the state the caller just listed (no read is spent then); without it the state is read first.
    404/409 and ARM's other refusals (400, 401, 403, ...) become outcomes; 408/429/5xx raise RetryableComputeError;
    anything else raises ComputeError.
    """
    return _begin(workspace, name, "stop", env, state)


def begin_start(
    workspace: Workspace, name: str, env: Mapping[str, str] | None = None, state: str | None = None
) -> StopOutcome:
    """Ask ARM to start (202 accepted: `starting`) and return at once; `already_running` when it runs; a refusal
    (quota, capacity) is `failed` with ARM's message."""
    return _begin(workspace, name, "start", env, state)


_DONE_STATES = {"stop": frozenset({"Stopped"}), "start": frozenset({"Running", "JobRunning"})}
_UNDERWAY_STATES = {"stop": "Stopping", "start": "Starting"}
_ACCEPTED: dict[str, StopStatus] = {"stop": "stopping", "start": "starting"}
_ALREADY: dict[str, StopStatus] = {"stop": "already_stopped", "start": "already_running"}


def _begin(
    workspace: Workspace, name: str, action: Literal["stop", "start"], env: Mapping[str, str] | None, state: str | None
) -> StopOutcome:
    from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError

    if state is None:
        try:
            state = get_state(workspace, name, env)
        except ComputeNotFoundError as err:
            return StopOutcome("not_found", None, str(err))
    if state in _DONE_STATES[action]:
        return StopOutcome(_ALREADY[action], state, f"already {state}")
    if state == _UNDERWAY_STATES[action]:
        return StopOutcome(_ACCEPTED[action], state, f"a {action} is already in progress")
    client = ml_client(workspace, env)
    what = f"{'stopping' if action == 'stop' else 'starting'} compute instance {name} of {workspace.key}"
    try:
        # The generated operation with polling=False sends the POST, reads the 202 and returns: no
        # long-running-operation poller is left running in a thread after the activity (MLClient's own
        # begin_stop/begin_start would poll the operation status every `polling_interval` until it ends, reads
        # that ARM counts against the subscription). The orchestration confirms the state by listing instead.
        operations = client.compute._operation
        begin = operations.begin_stop if action == "stop" else operations.begin_start
        begin(workspace.resource_group, workspace.name, name, polling=False)
    except ResourceNotFoundError:
        return StopOutcome("not_found", state, f"compute instance {name!r} not found (deleted meanwhile?)")
    except ResourceExistsError as err:
        return StopOutcome("in_transition", state, f"ARM answered 409 (in transition): {_arm_message(err)}")
    except HttpResponseError as err:
        status = _http_status(err)
        # ARM's refusals (400 disk full or quota, 401/403 missing role, ...) are final: report them, do not retry.
        if status is not None and 400 <= status < 500 and status not in RETRYABLE_CLIENT_STATUSES:
            return _refused(workspace, name, action, env, state, f"ARM answered {status}: {_arm_message(err)}")
        _raise_unexpected(err, what)
    except Exception as err:
        _raise_unexpected(err, what)
    log.info("%s of compute instance %s in %s accepted (was %s)", action, name, workspace.key, state)
    return StopOutcome(_ACCEPTED[action], state, f"{action} accepted (202)")


def _refused(
    workspace: Workspace,
    name: str,
    action: Literal["stop", "start"],
    env: Mapping[str, str] | None,
    listed: str,
    message: str,
) -> StopOutcome:
    """A 4xx refusal: when the listed state was stale (someone else stopped/started it), that is success.
    This read is spent only on a refusal, never on the usual path."""
    try:
        now = get_state(workspace, name, env)
    except ComputeError:
        return StopOutcome("failed", listed, message)
    if now in _DONE_STATES[action]:
        return StopOutcome(_ALREADY[action], now, f"already {now}")
    return StopOutcome("failed", listed, message)
