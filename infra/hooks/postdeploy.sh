#!/usr/bin/env bash
# azd postdeploy hook (also run by the CI deploy jobs): creates or updates the Event Grid subscription that
# delivers BlobCreated events of `incoming/*.csv` to the `on_blob_created` function.
#
# It runs after the code is deployed because the webhook URL carries the function's `eventgrid_extension`
# system key, which the Functions host creates only once it has indexed an Event Grid trigger. The
# subscription is written with one ARM PUT (create-or-update), so running the hook again changes nothing
# but a rotated key. Requires: az (logged in), and either azd or the variables below in the environment.
#
# A first deploy meets a cold app: the hook warms it (GET /api/health until it answers, WARM_WAIT_SECONDS,
# default 300), waits for the key (KEY_WAIT_SECONDS, default 300), and retries the PUT with backoff while Event
# Grid's validation handshake cannot reach the host yet (PUT_ATTEMPTS, default 5). Every wait says what it waits for.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"

# shellcheck disable=SC1091  # azd-env.sh is linted on its own, like every hook
source "$(dirname "$0")/azd-env.sh"  # the azd environment's values, when not exported already

: "${AZURE_RESOURCE_GROUP:?set by azd from infra outputs}"
: "${AZURE_FUNCTION_APP_NAME:?set by azd from infra outputs}"
: "${EVENT_GRID_SYSTEM_TOPIC_NAME:?set by azd from infra outputs}"
: "${DATA_STORAGE_ACCOUNT_ID:?set by azd from infra outputs}"
: "${SCORING_INPUT_CONTAINER:?set by azd from infra outputs}"
: "${EVENT_GRID_DEADLETTER_CONTAINER:?set by azd from infra outputs}"

FUNCTION_NAME="on_blob_created"
SUBSCRIPTION_NAME="${EVENT_GRID_SUBSCRIPTION_NAME:-scoring-incoming-csv}"
KEY_WAIT_SECONDS="${KEY_WAIT_SECONDS:-300}"
API_VERSION="2022-06-15"

WARM_WAIT_SECONDS="${WARM_WAIT_SECONDS:-300}"
PUT_ATTEMPTS="${PUT_ATTEMPTS:-5}"
RETRY_DELAY="${RETRY_DELAY:-10}"

# Checked first, so a missing login is said plainly rather than as a failed call halfway through.
command -v az >/dev/null 2>&1 || { echo "postdeploy: the Azure CLI (az) is required" >&2; exit 1; }
if ! subscription_id="$(az account show --query id --output tsv 2>/dev/null)" || [[ -z "$subscription_id" ]]; then
  echo "postdeploy: az is not logged in: run 'az login' (CI: azure/login or AzureCLI@2), then run this hook again" \
    "(bash infra/hooks/postdeploy.sh)" >&2
  exit 1
fi
host_name="$(az functionapp show --resource-group "$AZURE_RESOURCE_GROUP" --name "$AZURE_FUNCTION_APP_NAME" \
  --query defaultHostName --output tsv)"
app_url="${AZURE_FUNCTION_APP_URL:-https://$host_name}"

# Warm the app: the first request after a deploy starts the host, which indexes the functions, creates the system
# keys and then answers Event Grid's validation handshake.
echo "postdeploy: warming $app_url (GET /api/health)"
warm_attempts=$((WARM_WAIT_SECONDS / RETRY_DELAY > 1 ? WARM_WAIT_SECONDS / RETRY_DELAY : 2))
bash "$root/scripts/with-retries.sh" --attempts "$warm_attempts" --delay "$RETRY_DELAY" --max-delay "$RETRY_DELAY" \
  --waiting-for "$AZURE_FUNCTION_APP_NAME to start and answer /api/health" -- \
  curl --fail --silent --show-error --max-time 30 --output /dev/null "$app_url/api/health"

# The host creates the key on its first start after the deploy; wait for it rather than fail.
deadline=$((SECONDS + KEY_WAIT_SECONDS))
key=""
while [[ -z "$key" ]]; do
  key="$(az functionapp keys list --resource-group "$AZURE_RESOURCE_GROUP" --name "$AZURE_FUNCTION_APP_NAME" \
    --query "systemKeys.eventgrid_extension" --output tsv 2>/dev/null || true)"
  if [[ -z "$key" ]]; then
    if ((SECONDS + RETRY_DELAY > deadline)); then
      echo "postdeploy: no eventgrid_extension key after ${KEY_WAIT_SECONDS}s; is the app running and does it" \
        "define the Event Grid trigger $FUNCTION_NAME? (az functionapp function list -g $AZURE_RESOURCE_GROUP" \
        "-n $AZURE_FUNCTION_APP_NAME)" >&2
      exit 1
    fi
    echo "postdeploy: waiting ${RETRY_DELAY} s for the host of $AZURE_FUNCTION_APP_NAME to create its eventgrid_extension" \
      "system key (it does once it has indexed $FUNCTION_NAME)"
    # Listing functions makes the platform sync the host, which creates missing system keys.
    az functionapp function list --resource-group "$AZURE_RESOURCE_GROUP" --name "$AZURE_FUNCTION_APP_NAME" \
      --output none 2>/dev/null || true
    sleep "$RETRY_DELAY"
  fi
done

# The body holds the key: keep it in a private temp file, never on the command line or in the output.
umask 077
body="$(mktemp)"
trap 'rm -f "$body"' EXIT
cat >"$body" <<JSON
{
  "properties": {
    "destination": {
      "endpointType": "WebHook",
      "properties": {
        "endpointUrl": "https://${host_name}/runtime/webhooks/eventgrid?functionName=${FUNCTION_NAME}&code=${key}",
        "maxEventsPerBatch": 1,
        "preferredBatchSizeInKilobytes": 64
      }
    },
    "filter": {
      "includedEventTypes": ["Microsoft.Storage.BlobCreated"],
      "subjectBeginsWith": "/blobServices/default/containers/${SCORING_INPUT_CONTAINER}/",
      "subjectEndsWith": ".csv",
      "isSubjectCaseSensitive": false
    },
    "eventDeliverySchema": "EventGridSchema",
    "retryPolicy": {
      "maxDeliveryAttempts": 30,
      "eventTimeToLiveInMinutes": 1440
    },
    "deadLetterWithResourceIdentity": {
      "identity": { "type": "SystemAssigned" },
      "deadLetterDestination": {
        "endpointType": "StorageBlob",
        "properties": {
          "resourceId": "${DATA_STORAGE_ACCOUNT_ID}",
          "blobContainerName": "${EVENT_GRID_DEADLETTER_CONTAINER}"
        }
      }
    }
  }
}
JSON

uri="https://management.azure.com/subscriptions/${subscription_id}/resourceGroups/${AZURE_RESOURCE_GROUP}"
uri+="/providers/Microsoft.EventGrid/systemTopics/${EVENT_GRID_SYSTEM_TOPIC_NAME}"
uri+="/eventSubscriptions/${SUBSCRIPTION_NAME}?api-version=${API_VERSION}"

# Event Grid validates the endpoint during the PUT (the Functions host answers the handshake itself),
# so success here means events can be delivered. A host still starting fails the handshake: retried with backoff.
echo "postdeploy: writing Event Grid subscription $SUBSCRIPTION_NAME on $EVENT_GRID_SYSTEM_TOPIC_NAME"
bash "$root/scripts/with-retries.sh" --attempts "$PUT_ATTEMPTS" --delay "$RETRY_DELAY" --max-delay 120 \
  --retry-on '[Hh]andshake|[Vv]alidation|[Tt]ime[d ]*out|ServiceUnavailable|InternalServerError|Conflict|(^|[^0-9])(409|429|50[234])([^0-9]|$)' \
  --waiting-for "the host of $AZURE_FUNCTION_APP_NAME to answer Event Grid's validation handshake" -- \
  az rest --method put --uri "$uri" --body "@$body" --headers "Content-Type=application/json" --output none \
  2> >(sed -E 's/code=[^&" ]+/code=***/g' >&2)  # an error quoting the endpoint must not print the key

state=""
for _ in $(seq 1 30); do
  state="$(az rest --method get --uri "$uri" --query properties.provisioningState --output tsv)"
  [[ "$state" == "Succeeded" || "$state" == "Failed" ]] && break
  echo "postdeploy: the subscription is $state; waiting 5 s for it to be Succeeded"
  sleep 5
done
if [[ "$state" != "Succeeded" ]]; then
  echo "postdeploy: Event Grid subscription ended in state '$state'" >&2
  exit 1
fi
echo "postdeploy: Event Grid subscription $SUBSCRIPTION_NAME is ready (incoming/*.csv -> $FUNCTION_NAME)"
