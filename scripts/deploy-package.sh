#!/usr/bin/env bash
# Deploys a package built by scripts/package.sh --with-deps to the Flex Consumption app as is: no remote build.
#
#   scripts/deploy-package.sh APP_NAME RESOURCE_GROUP PACKAGE_ZIP
#
# Why not `az functionapp deployment source config-zip`: for Flex Consumption it remote-builds every Python app,
# whatever --build-remote says (Azure/azure-cli 00429bd, src/azure-cli/azure/cli/command_modules/appservice/
# custom.py, enable_zip_deploy_flex: `build_remote = build_remote or runtime == 'python'`), and a remote build of
# our 86 locked packages runs into the 60-second remote-build limit. This script makes the one-deploy call azd
# makes with `remoteBuild: false` (Azure/azure-dev ae35809, cli/azd/pkg/azsdk/funcapp_host_client.go: POST
# https://<scm host>/api/publish, polled at /api/deployments/<id>), says RemoteBuild=false explicitly, and fails
# unless the platform's own deployment record says it did not build.
#
# The platform writes the package to the deployment container with the app's identity. Right after a first
# provisioning that identity's role on the storage account may not have taken effect yet (a 403, "not authorized";
# azd does not retry it either: Azure/azure-dev#8026), so such a failure is retried with backoff
# (DEPLOY_ATTEMPTS, default 6; DEPLOY_RETRY_DELAY, default 20 s, doubling to at most 160 s); any other failure ends
# the deploy at once. Needs az (logged in), curl and python3. SCM_BASE_URL overrides https://<scm host> (tests).
set -euo pipefail
app="${1:?usage: $0 APP_NAME RESOURCE_GROUP PACKAGE_ZIP}"
group="${2:?usage: $0 APP_NAME RESOURCE_GROUP PACKAGE_ZIP}"
package="${3:?usage: $0 APP_NAME RESOURCE_GROUP PACKAGE_ZIP}"
attempts="${DEPLOY_ATTEMPTS:-6}"
delay="${DEPLOY_RETRY_DELAY:-20}"
timeout="${DEPLOY_TIMEOUT:-900}"
poll="${DEPLOY_POLL_SECONDS:-5}"
# Failures that mean "the app's identity may not write the package yet", as the platform words them.
propagating='403|[Ff]orbidden|AuthorizationPermissionMismatch|AuthorizationFailure|not authorized|InaccessibleStorage'

[[ -f "$package" ]] || { echo "deploy-package: no package at $package (build it with scripts/package.sh --with-deps)" >&2; exit 2; }
command -v az >/dev/null 2>&1 || { echo "deploy-package: the Azure CLI (az) is required" >&2; exit 2; }
az account show --output none 2>/dev/null || { echo "deploy-package: az is not logged in (az login, or azure/login in CI)" >&2; exit 2; }

scm="${SCM_BASE_URL:-}"
if [[ -z "$scm" ]]; then
  host="$(az functionapp show --resource-group "$group" --name "$app" \
    --query "hostNameSslStates[?hostType=='Repository'].name | [0]" --output tsv)"
  [[ -n "$host" ]] || { echo "deploy-package: $app in $group has no SCM host name" >&2; exit 1; }
  scm="https://$host"
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
umask 077
# The bearer token stays in a private file: never on a command line or in the output.
az account get-access-token --resource https://management.azure.com/ --query accessToken --output tsv |
  sed 's/^/Authorization: Bearer /' >"$work/auth"

# A field of the JSON on stdin (the whole value when it is a string), printed as JSON text for non-strings.
json_field() {
  python3 -c 'import json, sys
v = json.load(sys.stdin)
v = v if isinstance(v, str) else v.get(sys.argv[1], "")
print(v if isinstance(v, str) else json.dumps(v))' "$1"
}

# One deploy: upload, then poll the deployment until it ends. Sets `failure` when it does not succeed.
deploy_once() {
  failure=""
  local code id deadline record status text
  code="$(curl --silent --show-error --output "$work/answer" --write-out '%{http_code}' -X POST \
    -H @"$work/auth" -H "Content-Type: application/zip" -H "Accept: application/json" \
    --data-binary @"$package" "$scm/api/publish?RemoteBuild=false&Deployer=aml-ops-functions")" || code="000"
  if [[ "$code" != "202" ]]; then
    failure="upload answered HTTP $code: $(head -c 300 "$work/answer" 2>/dev/null)"
    return 1
  fi
  id="$(json_field id <"$work/answer")"
  [[ -n "$id" ]] || { failure="upload answered 202 without a deployment id"; return 1; }
  echo "deploy-package: uploaded $(du -h "$package" | cut -f1) to $app as deployment $id; waiting for it to finish"
  deadline=$((SECONDS + timeout))
  while ((SECONDS < deadline)); do
    sleep "$poll"
    code="$(curl --silent --output "$work/record" --write-out '%{http_code}' -H @"$work/auth" \
      "$scm/api/deployments/$id")" || code="000"
    [[ "$code" == "200" || "$code" == "202" ]] || continue  # 404 while the deployment worker starts; keep asking
    record="$(cat "$work/record")"
    status="$(json_field status <<<"$record")"
    text="$(json_field status_text <<<"$record")"
    case "$status" in
      4)
        case "$(json_field remoteBuild <<<"$record")" in
          false) echo "deploy-package: deployment $id succeeded without a remote build ($text)" ;;
          true) failure="deployment $id ran a remote build although RemoteBuild=false was asked; not the tested package"
            return 2 ;;
          *) echo "deploy-package: deployment $id succeeded ($text); its record does not say whether it built" \
            "(RemoteBuild=false was asked)" >&2 ;;
        esac
        return 0
        ;;
      3 | -1 | 5 | 6) failure="deployment $id ended with status $status: $text (log: $(json_field log_url <<<"$record"))"; return 1 ;;
      *) ;;
    esac
  done
  failure="deployment $id did not finish within ${timeout} s"
  return 1
}

for ((attempt = 1; ; attempt++)); do
  outcome=0
  deploy_once || outcome=$?
  ((outcome == 0)) && exit 0
  if ((outcome == 1)) && [[ "$failure" =~ $propagating ]] && ((attempt < attempts)); then
    echo "deploy-package: attempt $attempt/$attempts failed ($failure); waiting ${delay} s for the app's identity to" \
      "be allowed to write the package (role assignments take effect minutes after ARM reports them)" >&2
    sleep "$delay"
    delay=$((delay * 2 > 160 ? 160 : delay * 2))
    continue
  fi
  echo "deploy-package: $failure" >&2
  exit 1
done
