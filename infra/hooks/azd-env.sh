# shellcheck shell=bash
# Sourced by the azd hooks (not run): azd exports the environment's values to a hook; run by hand or from CI, a hook
# reads what is missing from `azd env get-values`, never overriding a variable that is already set.
if command -v azd >/dev/null 2>&1; then
  while IFS='=' read -r key value; do
    [[ "$key" =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || continue
    [[ -n "${!key:-}" ]] && continue
    value="${value#\"}"
    value="${value%\"}"
    export "$key=$value"
  done < <(azd env get-values 2>/dev/null || true)
fi
