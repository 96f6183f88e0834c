#!/usr/bin/env bash
# azd preprovision hook (azd runs it before every provision: azd up, scripts/provision.sh, CI): makes the custom
# Azure ML role exist, and be visible in every subscription that holds a managed workspace, before the template
# assigns it.
#
# Why: ARM reports a new role definition as created before every subscription can use it, so a template that
# defines the role and assigns it in one deployment fails now and then with RoleDefinitionDoesNotExist (or
# RoleAssignmentScopeNotAssignableToRoleDefinition in another subscription), and nothing in a Bicep deployment
# can wait or retry. So this hook writes the same definition first (PUT, idempotent: permissions from
# infra/aml-role.json, which the template reads too; the same id, name and scopes as infra/modules/aml-role.bicep),
# then reads it back from each workspace subscription until it is there (bounded: ROLE_WAIT_ATTEMPTS, default 8,
# with backoff from ROLE_WAIT_DELAY, default 15 s), and hands its id to the template (azd env AML_ROLE_GUID).
#
# If the role cannot be written (the deploying identity lacks Microsoft.Authorization/roleDefinitions/write) or never
# becomes visible: with AML_ROLE_FALLBACK=builtin the hook switches AML_ROLE_MODE to builtin (AzureML Compute
# Operator, which also allows create/delete/start: it says so), otherwise it stops before anything is created, saying
# what to do. With AML_ROLE_MODE=builtin there is nothing to prepare.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"

# shellcheck disable=SC1091  # azd-env.sh is linted on its own, like every hook
source "$(dirname "$0")/azd-env.sh"  # the azd environment's values, when not exported already

if [[ "${PROVISION_PREVIEW:-}" == "true" ]]; then
  # `azd provision --preview` runs this hook too; a preview changes nothing (the what-if shows the role as it will be).
  echo "preprovision: PROVISION_PREVIEW=true: the custom role is left as it is"
  exit 0
fi
mode="${AML_ROLE_MODE:-custom}"
if [[ "$mode" != "custom" ]]; then
  echo "preprovision: AML_ROLE_MODE=$mode: the built-in AzureML Compute Operator role needs no preparation"
  exit 0
fi
: "${AZURE_ENV_NAME:?the azd environment name (set by azd)}"
: "${AML_WORKSPACES:?the workspaces to manage: azd env set AML_WORKSPACES \"<sub>/<rg>/<workspace>,...\"}"

command -v az >/dev/null 2>&1 || { echo "preprovision: the Azure CLI (az) is required (the custom role is written with it)" >&2; exit 1; }
if ! logged_in_to="$(az account show --query id --output tsv 2>/dev/null)" || [[ -z "$logged_in_to" ]]; then
  echo "preprovision: az is not logged in: run 'az login' (azd and az keep separate logins), then provision again" >&2
  exit 1
fi
subscription="${AZURE_SUBSCRIPTION_ID:-$logged_in_to}"

# The role's id and body, computed as the template computes them (python3: uuid5 and JSON without jq).
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
python3 - "$subscription" "$AZURE_ENV_NAME" "$AML_WORKSPACES" "$root/infra/aml-role.json" "$work" <<'PY'
import json, sys, uuid
from pathlib import Path

subscription, env_name, workspaces, role_file, work = sys.argv[1:]
# ARM's guid(a, b, c) is the name-based UUID v5 of "a-b-c" in the namespace 11fb06fb-712d-4ddd-98c7-e71bbd588830
# (the Bicep string-functions reference); main.bicep: guid(subscription().id, environmentName, '...-stopper').
role_id = str(uuid.uuid5(uuid.UUID("11fb06fb-712d-4ddd-98c7-e71bbd588830"),
                         f"/subscriptions/{subscription}-{env_name}-aml-compute-instance-stopper"))
subscriptions = []
for item in filter(None, (part.strip() for part in workspaces.split(","))):
    parts = [p for p in item.split("/") if p]
    if len(parts) not in (3, 8):
        sys.exit(f"preprovision: AML_WORKSPACES entry {item!r} is neither sub/rg/workspace nor a workspace resource id")
    subscriptions.append(parts[0] if len(parts) == 3 else parts[1])
scopes = list(dict.fromkeys([f"/subscriptions/{subscription}", *(f"/subscriptions/{s}" for s in subscriptions)]))
role = json.loads(Path(role_file).read_text())
body = {"properties": {
    "roleName": f"AML Compute Instance Scheduler ({env_name}, {role_id[:8]})",
    "description": role["description"], "type": "CustomRole", "assignableScopes": scopes,
    "permissions": [{"actions": role["actions"], "notActions": [], "dataActions": [], "notDataActions": []}],
}}
Path(work, "role.json").write_text(json.dumps(body))
Path(work, "role_id").write_text(role_id)
Path(work, "scopes").write_text("".join(f"{scope}\n" for scope in scopes))
PY
role_id="$(cat "$work/role_id")"
api="api-version=2022-04-01"
arm="https://management.azure.com"

fall_back_or_stop() {
  local why="$1"
  if [[ "${AML_ROLE_FALLBACK:-}" == "builtin" ]]; then
    echo "preprovision: WARNING: $why. AML_ROLE_FALLBACK=builtin: switching AML_ROLE_MODE to builtin, so the app" \
      "gets AzureML Compute Operator, which also allows creating, deleting and restarting compute instances" >&2
    azd env set AML_ROLE_MODE builtin
    exit 0
  fi
  echo "preprovision: $why. Either give the deploying identity Microsoft.Authorization/roleDefinitions/write on" \
    "those subscriptions (Owner or User Access Administrator) and provision again, or accept the wider built-in" \
    "role: azd env set AML_ROLE_MODE builtin (or AML_ROLE_FALLBACK=builtin to fall back when this happens)" >&2
  exit 1
}

echo "preprovision: writing the custom role $role_id (AML Compute Instance Scheduler) for the workspaces' subscriptions"
if ! bash "$root/scripts/with-retries.sh" --attempts 3 --delay 10 --retry-on 'TooManyRequests|InternalServerError|ServiceUnavailable|(^|[^0-9])(429|50[234])([^0-9]|$)' \
  --waiting-for "ARM to accept the role definition" -- \
  az rest --method put --uri "$arm/subscriptions/$subscription/providers/Microsoft.Authorization/roleDefinitions/$role_id?$api" \
  --body "@$work/role.json" --headers "Content-Type=application/json" --output none; then
  fall_back_or_stop "the custom role could not be written in subscription $subscription"
fi

# fd 3: the commands in the loop must not read (and swallow) the rest of the list from stdin.
while read -r scope <&3; do
  if ! bash "$root/scripts/with-retries.sh" --attempts "${ROLE_WAIT_ATTEMPTS:-8}" --delay "${ROLE_WAIT_DELAY:-15}" --max-delay 120 \
    --retry-on 'RoleDefinitionDoesNotExist|NotFound|(^|[^0-9])404([^0-9]|$)' \
    --waiting-for "the new custom role $role_id to be visible in ${scope#/subscriptions/} (role definitions propagate after ARM reports them)" -- \
    az rest --method get --uri "$arm$scope/providers/Microsoft.Authorization/roleDefinitions/$role_id?$api" --output none; then
    fall_back_or_stop "the custom role $role_id is still not visible in ${scope#/subscriptions/}"
  fi
done 3<"$work/scopes"

# The template assigns exactly this role (main.parameters.json: amlRoleGuid = ${AML_ROLE_GUID}).
if command -v azd >/dev/null 2>&1; then
  azd env set AML_ROLE_GUID "$role_id"
fi
echo "preprovision: the custom role $role_id is visible in every workspace subscription"
