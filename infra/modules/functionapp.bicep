// The Function App on the Flex Consumption plan (Linux, Python 3.11), running as the user-assigned identity.
// Every connection is identity-based (<Connection>__serviceUri / __credential / __clientId); the app settings
// hold no key, and secret settings are Key Vault references resolved with the same identity.
param name string
param planName string
param location string
param tags object = {}
@description('azd finds the app to deploy by this tag (services.<name> in azure.yaml).')
param serviceName string
param identityId string
param identityClientId string
param hostStorageAccountName string
param deploymentContainerName string
param applicationInsightsName string
param maximumInstanceCount int = 40
param instanceMemoryMB int = 2048
param pythonVersion string = '3.11'
@description('Always-ready instances of the Durable Functions group (orchestrators, activities, entities): one warm instance keeps a run from waiting for a cold start after an idle period. 0 = scale from zero.')
@minValue(0)
param durableAlwaysReady int = 1
@description('App settings specific to this app (data storage, shutdown, scoring).')
param appSettings object = {}
@description('Secret app settings, each a @Microsoft.KeyVault(SecretUri=...) reference.')
param secretSettings object = {}

resource hostStorage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: hostStorageAccountName
}

resource applicationInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  // checkov:skip=CKV_AZURE_225: zone redundancy of Flex Consumption exists only in some regions and changes the plan's pricing; a deployment that needs it sets zoneRedundant here
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    tier: 'FlexConsumption'
    name: 'FC1'
  }
  properties: {
    reserved: true
  }
}

// Host storage and telemetry: identical on every deployment of this app. FUNCTIONS_WORKER_RUNTIME and
// FUNCTIONS_EXTENSION_VERSION are absent on purpose: Flex Consumption takes them from functionAppConfig.
var platformSettings = {
  AzureWebJobsStorage__blobServiceUri: hostStorage.properties.primaryEndpoints.blob
  AzureWebJobsStorage__queueServiceUri: hostStorage.properties.primaryEndpoints.queue
  AzureWebJobsStorage__tableServiceUri: hostStorage.properties.primaryEndpoints.table
  AzureWebJobsStorage__credential: 'managedidentity'
  AzureWebJobsStorage__clientId: identityClientId
  // DefaultAzureCredential (azure-identity) picks the user-assigned identity from this.
  AZURE_CLIENT_ID: identityClientId
  // Not a secret: with local auth off, ingestion also needs an Entra token of the identity below.
  APPLICATIONINSIGHTS_CONNECTION_STRING: applicationInsights.properties.ConnectionString
  APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identityClientId};Authorization=AAD'
  // Logs shipped once: the app exports its own (shared/telemetry.py); with this the worker declares
  // WorkerOpenTelemetryEnabled, and the host (host.json telemetryMode: OpenTelemetry) drops the copies the worker
  // relays to it, instead of exporting them again. Sources: docs/deploy.md, "Telemetry: every log once".
  PYTHON_ENABLE_OPENTELEMETRY: 'true'
}

resource site 'Microsoft.Web/sites@2024-04-01' = {
  // checkov:skip=CKV_AZURE_78: Flex Consumption rejects siteConfig.ftpsState (error 51021) and has no FTP endpoint; FTP publishing credentials are denied by the ftpBasicAuth policy below
  // checkov:skip=CKV_AZURE_222: the HTTP API and the Event Grid webhook are public by design; every function but /api/health needs a function key
  // checkov:skip=CKV_AZURE_17: callers (Event Grid, curl, the dashboard) cannot present client certificates; calls are authorised by function keys
  // checkov:skip=CKV_AZURE_212: Flex Consumption scales instances itself; one always-ready `durable` instance (durableAlwaysReady) stays warm
  // checkov:skip=CKV_AZURE_213: App Service health check replaces instances of fixed-size plans; Flex Consumption manages its instances, and CI polls /api/health after every deploy
  name: name
  location: location
  tags: union(tags, {
    'azd-service-name': serviceName
  })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    // Key Vault references in app settings are resolved with the user-assigned identity, not a system one.
    keyVaultReferenceIdentity: identityId
    // Only properties Flex Consumption accepts: it rejects the whole site (error 51021) for ftpsState,
    // use32BitWorkerProcess, preWarmedInstanceCount, netFrameworkVersion, linuxFxVersion, alwaysOn and the
    // others listed in tests/unit/test_infra.py. FTP is off anyway: Flex has no FTP endpoint and the
    // basic-auth policies below deny publishing credentials.
    siteConfig: {
      minTlsVersion: '1.2'
      http20Enabled: true
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${hostStorage.properties.primaryEndpoints.blob}${deploymentContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: instanceMemoryMB
        // Flex's replacement of preWarmedInstanceCount, per function group; `durable` covers every Durable
        // trigger. Billed while idle (baseline rate), so it is a parameter; 0 turns it off.
        alwaysReady: [
          {
            name: 'durable'
            instanceCount: durableAlwaysReady
          }
        ]
      }
      runtime: {
        name: 'python'
        version: pythonVersion
      }
    }
  }
}

resource settings 'Microsoft.Web/sites/config@2024-04-01' = {
  // checkov reads every sites/config as site configuration; this one is the `appsettings` list, which has none
  // of the properties these checks look for (logging, auth, .NET version, Azure Files, public access).
  // checkov:skip=CKV_AZURE_66: appsettings resource, not site configuration
  // checkov:skip=CKV_AZURE_63: appsettings resource, not site configuration
  // checkov:skip=CKV_AZURE_222: appsettings resource, not site configuration
  // checkov:skip=CKV_AZURE_80: appsettings resource, not site configuration (and a Python app)
  // checkov:skip=CKV_AZURE_13: appsettings resource, not site configuration; HTTP functions use function keys
  // checkov:skip=CKV_AZURE_88: appsettings resource, not site configuration; Flex Consumption has no Azure Files content share
  // checkov:skip=CKV_AZURE_65: appsettings resource, not site configuration
  parent: site
  name: 'appsettings'
  properties: union(appSettings, secretSettings, platformSettings)
}

// Deployments authenticate with Entra ID (azd, Azure/functions-action with OIDC): no publishing passwords.
resource scmBasicAuth 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: site
  name: 'scm'
  properties: {
    allow: false
  }
}

resource ftpBasicAuth 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: site
  name: 'ftp'
  properties: {
    allow: false
  }
}

output id string = site.id
output name string = site.name
output url string = 'https://${site.properties.defaultHostName}'
