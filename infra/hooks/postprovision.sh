#!/usr/bin/env bash
# azd postprovision hook: lets the app identity's new role assignments take effect before azd deploys the code.
#
# The platform writes the deployment package into the host account's container with the app's own identity. ARM
# reports a role assignment as created before storage honours it, so a deploy seconds after the first provisioning
# can fail with 403 ("This request is not authorized to perform this operation"), and azd does not retry it
# (Azure/azure-dev#8026). No request can prove the identity's access from outside, so this hook waits until the
# identity's newest role assignment on the host account is RBAC_SETTLE_SECONDS old (default 120), saying what it
# waits for; every later provision finds old assignments and goes on at once. scripts/deploy-package.sh (CI) also
# retries such a 403 itself.
set -euo pipefail

# shellcheck disable=SC1091  # azd-env.sh is linted on its own, like every hook
source "$(dirname "$0")/azd-env.sh"  # the azd environment's values, when not exported already
if [[ "${PROVISION_PREVIEW:-}" == "true" || -z "${HOST_STORAGE_ACCOUNT_NAME:-}" ]]; then
  # `azd provision --preview` runs this hook too, before anything exists: nothing was assigned, nothing to wait for.
  echo "postprovision: nothing provisioned yet (a preview?): no role assignment to wait for"
  exit 0
fi
: "${AZURE_RESOURCE_GROUP:?set by azd from infra outputs}"
: "${AZURE_MANAGED_IDENTITY_CLIENT_ID:?set by azd from infra outputs}"
settle="${RBAC_SETTLE_SECONDS:-120}"
step="${RBAC_SETTLE_STEP:-30}"

command -v az >/dev/null 2>&1 || { echo "postprovision: the Azure CLI (az) is required" >&2; exit 1; }
az account show --output none 2>/dev/null || { echo "postprovision: az is not logged in: run 'az login', then 'azd deploy'" >&2; exit 1; }

scope="$(az storage account show --resource-group "$AZURE_RESOURCE_GROUP" --name "$HOST_STORAGE_ACCOUNT_NAME" \
  --query id --output tsv)"
newest="$(az role assignment list --assignee "$AZURE_MANAGED_IDENTITY_CLIENT_ID" --scope "$scope" \
  --query "max_by([], &createdOn).createdOn" --output tsv)"
if [[ -z "$newest" ]]; then
  echo "postprovision: the app's identity has no role on $HOST_STORAGE_ACCOUNT_NAME, which infra/modules/rbac.bicep" \
    "grants: the code deploy would fail; run 'azd provision' again" >&2
  exit 1
fi
age=$(($(date -u +%s) - $(date -u -d "$newest" +%s)))
while ((age < settle)); do
  wait=$((settle - age < step ? settle - age : step))
  echo "postprovision: waiting ${wait} s (of $((settle - age)) s left) for the app identity's roles on" \
    "$HOST_STORAGE_ACCOUNT_NAME, assigned ${age} s ago, to take effect before the code deploy writes the package with it"
  sleep "$wait"
  age=$((age + wait))
done
echo "postprovision: the app identity's roles on $HOST_STORAGE_ACCOUNT_NAME were assigned ${age} s ago or more"
