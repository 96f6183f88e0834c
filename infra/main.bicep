// The whole deployment of the app: one resource group with the Function App (Flex Consumption, Python 3.11),
// its storage, identity, monitoring, Key Vault and Event Grid topic, plus the role it needs on each Azure ML
// workspace it manages (those may live in other resource groups or subscriptions). See docs/deploy.md.
targetScope = 'subscription'

@minLength(1)
@maxLength(64)
@description('Name of the azd environment; also seeds the unique names of every resource.')
param environmentName string

// Regions that offer the Flex Consumption plan, as listed by Microsoft's azd template for a Python Flex app
// (Azure-Samples/functions-quickstart-python-http-azd, infra/main.bicep, list last changed 2025-05-07 in 947c194,
// read 2026-12-07; the docs send to `az functionapp list-flexconsumption-locations` for the current list), without
// the canary region eastus2euap. A region added since: add it here after checking it with that command.
@allowed([
  'australiaeast'
  'australiasoutheast'
  'brazilsouth'
  'canadacentral'
  'centralindia'
  'centralus'
  'eastasia'
  'eastus'
  'eastus2'
  'francecentral'
  'germanywestcentral'
  'italynorth'
  'japaneast'
  'koreacentral'
  'northcentralus'
  'northeurope'
  'norwayeast'
  'southafricanorth'
  'southcentralus'
  'southeastasia'
  'southindia'
  'spaincentral'
  'swedencentral'
  'uaenorth'
  'uksouth'
  'ukwest'
  'westcentralus'
  'westeurope'
  'westus'
  'westus2'
  'westus3'
])
@description('Region of every resource; one that offers the Flex Consumption plan (az functionapp list-flexconsumption-locations).')
@metadata({
  azd: {
    type: 'location'
  }
})
param location string

@description('Object id of a person (or CI principal) who may upload and read scoring data, for the smoke test. Empty: none.')
param principalId string = ''

@minLength(1)
@description('Azure ML workspaces whose compute instances are managed: comma-separated "subscription/resource-group/workspace" or full workspace resource ids.')
param amlWorkspaces string

@allowed([
  'custom'
  'builtin'
])
@description('custom: a role with only computes/read and computes/stop/action (needs Owner or User Access Administrator on the subscriptions). builtin: AzureML Compute Operator (also create/delete/start).')
param amlRoleMode string = 'custom'

@description('Id (GUID) of the custom role; empty: guid(subscription, environment, \'aml-compute-instance-stopper\'). The preprovision hook computes that same value, creates the role first and passes it here.')
param amlRoleGuid string = ''

@description('NCRONTAB schedule (UTC) of the nightly shutdown.')
param shutdownSchedule string = '0 0 22 * * *'

@description('Working-hours schedules (COMPUTE_SCHEDULES JSON; empty = none). Instances opt in with the compute-schedule tag.')
param computeSchedules string = ''

@allowed([
  'opt-out'
  'opt-in'
])
@description('opt-out: stop every running instance unless exempt by tag; opt-in: only instances tagged for shutdown.')
param shutdownMode string = 'opt-out'

@description('Decide and report but stop nothing. On by default so a first deployment cannot stop anyone\'s instance by surprise.')
param shutdownDryRun bool = true

@description('Model to score with: empty for the model shipped in the package, a blob URL in the models container, or azureml:NAME:VERSION.')
param modelUri string = ''

@minValue(1)
@maxValue(1000)
@description('Most instances the Flex Consumption plan may scale out to.')
param maximumInstanceCount int = 40

@allowed([
  512
  2048
  4096
])
@description('Memory of each instance, in MB. Scoring chunks of 32 MB with polars fit in 2048.')
param instanceMemoryMB int = 2048

@minValue(0)
@maxValue(20)
@description('Always-ready instances of the `durable` function group (recommended for Durable Functions on Flex Consumption: orchestrations start without a cold start after an idle period). Billed at the baseline rate while idle; 0 scales to zero.')
param durableAlwaysReady int = 1

@secure()
@description('Secret app settings, as { SETTING_NAME: value }: each becomes a Key Vault secret and the app setting a Key Vault reference. Nothing is secret by default (every connection uses the managed identity).')
param appSecrets object = {}

var abbrs = loadJsonContent('abbreviations.json')
var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
var tags = {
  'azd-env-name': environmentName
}

var functionAppName = '${abbrs.webSitesFunctions}aml-ops-${resourceToken}'
// Flex Consumption reads the package from this container; the name must be unique per app.
var deploymentContainerName = 'app-package-${take(resourceToken, 7)}'
var scoringInputContainer = 'incoming'
var scoringOutputContainer = 'predictions'
var scoringErrorsContainer = 'scoring-errors'
var reportsContainer = 'reports'
var modelsContainer = 'models'
var deadLetterContainer = 'eventgrid-deadletter'

// "sub/rg/ws" or "/subscriptions/sub/resourceGroups/rg/providers/Microsoft.MachineLearningServices/workspaces/ws".
var workspaceParts = map(
  filter(split(amlWorkspaces, ','), item => !empty(trim(item))),
  item => filter(split(trim(item), '/'), part => !empty(part))
)
var workspaces = map(workspaceParts, parts => length(parts) == 3
  ? {
      subscriptionId: parts[0]
      resourceGroup: parts[1]
      name: parts[2]
    }
  : {
      subscriptionId: parts[1]
      resourceGroup: parts[3]
      name: parts[7]
    })
var amlWorkspacesSetting = join(map(workspaces, ws => '${ws.subscriptionId}/${ws.resourceGroup}/${ws.name}'), ',')
var workspaceSubscriptionScopes = union(
  [subscription().id],
  map(workspaces, ws => '/subscriptions/${ws.subscriptionId}')
)
// Each secret app setting points at its Key Vault secret; the platform resolves it with the app's identity.
var secretSettings = reduce(
  items(appSecrets),
  {},
  (acc, secret) => union(acc, {
    '${secret.key}': '@Microsoft.KeyVault(SecretUri=${keyVault.outputs.endpoint}secrets/${replace(secret.key, '_', '-')}/)'
  })
)
var amlComputeOperatorRoleId = 'e503ece1-11d0-4e8e-8e2c-7a6c3bf38815'
var amlCustomRoleId = empty(amlRoleGuid) ? guid(subscription().id, environmentName, 'aml-compute-instance-stopper') : amlRoleGuid

resource rg 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: '${abbrs.resourcesResourceGroups}${environmentName}'
  location: location
  tags: tags
}

module identity 'modules/identity.bicep' = {
  name: 'identity'
  scope: rg
  params: {
    name: '${abbrs.managedIdentityUserAssignedIdentities}aml-ops-${resourceToken}'
    location: location
    tags: tags
  }
}

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring'
  scope: rg
  params: {
    logAnalyticsName: '${abbrs.operationalInsightsWorkspaces}${resourceToken}'
    applicationInsightsName: '${abbrs.insightsComponents}${resourceToken}'
    location: location
    tags: tags
  }
}

// Host storage: the Functions runtime (keys, leases, timer state), the Durable task hub (queues, tables,
// blobs) and the deployment package. Only the app's identity reaches it.
module hostStorage 'modules/storage.bicep' = {
  name: 'host-storage'
  scope: rg
  params: {
    name: '${abbrs.storageStorageAccounts}${resourceToken}'
    location: location
    tags: tags
    containers: [
      deploymentContainerName
    ]
    logAnalyticsWorkspaceId: monitoring.outputs.logAnalyticsId
    // The host account's requests are the runtime's own: lease renewals, timer state, the task hub polling its
    // queues every 10 s. Logging each would cost more than the app does at idle (docs/deploy.md, "What it costs");
    // its Transaction metrics still go to Log Analytics.
    blobRequestLogs: false
  }
}

// Data storage: what users upload and what the app writes. Event Grid watches this account only.
module dataStorage 'modules/storage.bicep' = {
  name: 'data-storage'
  scope: rg
  params: {
    name: '${abbrs.storageStorageAccounts}data${resourceToken}'
    location: location
    tags: tags
    containers: [
      scoringInputContainer
      scoringOutputContainer
      scoringErrorsContainer
      reportsContainer
      modelsContainer
      deadLetterContainer
    ]
    logAnalyticsWorkspaceId: monitoring.outputs.logAnalyticsId
    // Who read, wrote or deleted users' data (and every 403), in StorageBlobLogs.
    blobRequestLogs: true
  }
}

module keyVault 'modules/keyvault.bicep' = {
  name: 'keyvault'
  scope: rg
  params: {
    name: '${abbrs.keyVaultVaults}${resourceToken}'
    location: location
    tags: tags
    secrets: appSecrets
    logAnalyticsWorkspaceId: monitoring.outputs.logAnalyticsId
  }
}

module eventGrid 'modules/eventgrid.bicep' = {
  name: 'eventgrid'
  scope: rg
  params: {
    name: '${abbrs.eventGridSystemTopics}data-${resourceToken}'
    location: location
    tags: tags
    storageAccountName: dataStorage.outputs.name
    deadLetterContainerName: deadLetterContainer
    logAnalyticsWorkspaceId: monitoring.outputs.logAnalyticsId
  }
}

module functionApp 'modules/functionapp.bicep' = {
  name: 'functionapp'
  scope: rg
  params: {
    name: functionAppName
    planName: '${abbrs.webServerFarms}${resourceToken}'
    location: location
    tags: tags
    serviceName: 'api'
    identityId: identity.outputs.id
    identityClientId: identity.outputs.clientId
    hostStorageAccountName: hostStorage.outputs.name
    deploymentContainerName: deploymentContainerName
    applicationInsightsName: monitoring.outputs.applicationInsightsName
    maximumInstanceCount: maximumInstanceCount
    instanceMemoryMB: instanceMemoryMB
    durableAlwaysReady: durableAlwaysReady
    appSettings: {
      DATA_STORAGE__serviceUri: dataStorage.outputs.blobEndpoint
      DATA_STORAGE__credential: 'managedidentity'
      DATA_STORAGE__clientId: identity.outputs.clientId
      AML_WORKSPACES: amlWorkspacesSetting
      SHUTDOWN_SCHEDULE: shutdownSchedule
      COMPUTE_SCHEDULES: computeSchedules
      // Without a schedule the reconciler's minute timer has nothing to do, yet each firing wakes an instance (and
      // logs): the platform does not fire a disabled function (AzureWebJobs.<function name>.Disabled, "How to disable
      // functions in Azure Functions"). The function is named in triggers/schedules.py.
      'AzureWebJobs.reconcile_schedules.Disabled': empty(trim(computeSchedules)) ? 'true' : 'false'
      SHUTDOWN_MODE: shutdownMode
      SHUTDOWN_DRY_RUN: string(shutdownDryRun)
      SCORING_INPUT_CONTAINER: scoringInputContainer
      SCORING_OUTPUT_CONTAINER: scoringOutputContainer
      SCORING_ERRORS_CONTAINER: scoringErrorsContainer
      REPORTS_CONTAINER: reportsContainer
      MODEL_URI: modelUri
    }
    secretSettings: secretSettings
  }
  // Roles first, so the host's first start already reaches its storage and the vault.
  dependsOn: [
    rbac
  ]
}

module rbac 'modules/rbac.bicep' = {
  name: 'rbac'
  scope: rg
  params: {
    identityPrincipalId: identity.outputs.principalId
    hostStorageAccountName: hostStorage.outputs.name
    dataStorageAccountName: dataStorage.outputs.name
    keyVaultName: keyVault.outputs.name
    applicationInsightsName: monitoring.outputs.applicationInsightsName
    userPrincipalId: principalId
  }
}

module amlRole 'modules/aml-role.bicep' = if (amlRoleMode == 'custom') {
  name: 'aml-role'
  params: {
    roleGuid: amlCustomRoleId
    roleName: 'AML Compute Instance Scheduler (${environmentName}, ${take(amlCustomRoleId, 8)})'
    assignableScopes: workspaceSubscriptionScopes
  }
}

module amlAccess 'modules/aml-access.bicep' = [
  for (ws, i) in workspaces: {
    name: 'aml-access-${i}-${take(uniqueString(ws.subscriptionId, ws.resourceGroup, ws.name), 6)}'
    scope: resourceGroup(ws.subscriptionId, ws.resourceGroup)
    params: {
      workspaceName: ws.name
      principalId: identity.outputs.principalId
      roleGuid: amlRoleMode == 'custom' ? amlCustomRoleId : amlComputeOperatorRoleId
    }
    dependsOn: [
      amlRole
    ]
  }
]

// azd stores these in the environment (.azure/<env>/.env); the post-deploy hook and docs/deploy.md use them.
output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_RESOURCE_GROUP string = rg.name
output AZURE_FUNCTION_APP_NAME string = functionApp.outputs.name
output AZURE_FUNCTION_APP_URL string = functionApp.outputs.url
output AZURE_MANAGED_IDENTITY_CLIENT_ID string = identity.outputs.clientId
output AZURE_KEY_VAULT_NAME string = keyVault.outputs.name
output AZURE_KEY_VAULT_ENDPOINT string = keyVault.outputs.endpoint
output DATA_STORAGE_ACCOUNT_NAME string = dataStorage.outputs.name
output DATA_STORAGE_ACCOUNT_ID string = dataStorage.outputs.id
output HOST_STORAGE_ACCOUNT_NAME string = hostStorage.outputs.name
output EVENT_GRID_SYSTEM_TOPIC_NAME string = eventGrid.outputs.name
output EVENT_GRID_DEADLETTER_CONTAINER string = deadLetterContainer
output SCORING_INPUT_CONTAINER string = scoringInputContainer
output SCORING_OUTPUT_CONTAINER string = scoringOutputContainer
output AML_ROLE_DEFINITION_ID string = amlRoleMode == 'custom' ? amlCustomRoleId : amlComputeOperatorRoleId
