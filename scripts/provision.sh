#!/usr/bin/env bash
# Provisions infra/ with azd, as both pipelines do, retrying what fails only because Azure is eventually consistent:
# a new identity, role definition or role assignment that ARM reported but another service does not see yet
# (PrincipalNotFound, RoleDefinitionDoesNotExist, RoleAssignmentScopeNotAssignableToRoleDefinition). Any other
# failure stops at once. azd runs the preprovision and postprovision hooks (infra/hooks) on every attempt; the
# template is idempotent, so an attempt picks up where the last one stopped.
#
#   scripts/provision.sh [azd provision options]     # PROVISION_ATTEMPTS (default 4), PROVISION_RETRY_DELAY (30 s)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
exec bash "$root/scripts/with-retries.sh" --stream --attempts "${PROVISION_ATTEMPTS:-4}" \
  --delay "${PROVISION_RETRY_DELAY:-30}" --max-delay 240 \
  --retry-on 'PrincipalNotFound|RoleDefinitionDoesNotExist|RoleAssignmentScopeNotAssignableToRoleDefinition' \
  --waiting-for "new identities, role definitions and role assignments to reach every Azure service" -- \
  azd provision --no-prompt "$@"
