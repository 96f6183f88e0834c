// A StorageV2 account reachable only with Entra ID (shared-key access off, no public blobs, TLS 1.2),
// with the given private blob containers, and its diagnostics in Log Analytics.
param name string
param location string
param tags object = {}
param containers array = []
@description('Log Analytics workspace receiving the account\'s Transaction metrics (and blob request logs); empty: none.')
param logAnalyticsWorkspaceId string = ''
@description('Also log every blob request (StorageRead, StorageWrite, StorageDelete) to StorageBlobLogs.')
param blobRequestLogs bool = false

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  // checkov:skip=CKV_AZURE_35: this deployment has no virtual network: the Functions host, Event Grid and operators reach it over its public endpoint, and every request needs an Entra token (RBAC); shared-key access is off
  // checkov:skip=CKV_AZURE_59: this deployment has no virtual network: the Functions host, Event Grid and operators reach it over its public endpoint, and every request needs an Entra token (RBAC); blob public access and shared keys are off
  // checkov:skip=CKV_AZURE_206: locally redundant on purpose: the data account holds inputs a user can upload again and outputs the app recomputes, the host account only runtime state
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: 'Standard_LRS'
  }
  properties: {
    accessTier: 'Hot'
    allowBlobPublicAccess: false
    allowSharedKeyAccess: false
    allowCrossTenantReplication: false
    defaultToOAuthAuthentication: true
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: 'Allow'
    }
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: storage
  name: 'default'
  properties: {
    deleteRetentionPolicy: {
      enabled: true
      days: 7
    }
    containerDeleteRetentionPolicy: {
      enabled: true
      days: 7
    }
  }
}

resource blobContainers 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = [
  for container in containers: {
    parent: blobService
    name: container
    properties: {
      publicAccess: 'None'
    }
  }
]

// Account-level diagnostic settings carry metrics only; request logs are set on each service.
resource accountDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = if (!empty(logAnalyticsWorkspaceId)) {
  name: 'to-log-analytics'
  scope: storage
  properties: {
    workspaceId: logAnalyticsWorkspaceId
    metrics: [
      {
        category: 'Transaction'
        enabled: true
      }
    ]
  }
}

resource blobDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = if (!empty(logAnalyticsWorkspaceId) && blobRequestLogs) {
  name: 'to-log-analytics'
  scope: blobService
  properties: {
    workspaceId: logAnalyticsWorkspaceId
    logs: [
      {
        category: 'StorageRead'
        enabled: true
      }
      {
        category: 'StorageWrite'
        enabled: true
      }
      {
        category: 'StorageDelete'
        enabled: true
      }
    ]
  }
}

output id string = storage.id
output name string = storage.name
output blobEndpoint string = storage.properties.primaryEndpoints.blob
output queueEndpoint string = storage.properties.primaryEndpoints.queue
output tableEndpoint string = storage.properties.primaryEndpoints.table
