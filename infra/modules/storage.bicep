// A StorageV2 account reachable only with Entra ID (shared-key access off, no public blobs, TLS 1.2),
// with the given private blob containers.
param name string
param location string
param tags object = {}
param containers array = []

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

output id string = storage.id
output name string = storage.name
output blobEndpoint string = storage.properties.primaryEndpoints.blob
output queueEndpoint string = storage.properties.primaryEndpoints.queue
output tableEndpoint string = storage.properties.primaryEndpoints.table
