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
}

resource site 'Microsoft.Web/sites@2024-04-01' = {
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
    siteConfig: {
      minTlsVersion: '1.2'
      ftpsState: 'Disabled'
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
      }
      runtime: {
        name: 'python'
        version: pythonVersion
      }
    }
  }
}

resource settings 'Microsoft.Web/sites/config@2024-04-01' = {
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
