// Event Grid system topic on the data storage account. Its subscription to the app's `on_blob_created`
// webhook is created after deploy by infra/hooks/postdeploy.sh, because the webhook URL carries the
// function's `eventgrid_extension` system key, which exists only once the app runs. The topic's own
// identity writes undeliverable events to the dead-letter container (shared keys are off).
param name string
param location string
param tags object = {}
param storageAccountName string
param deadLetterContainerName string
@description('Log Analytics workspace receiving the topic\'s delivery failures (AegDeliveryFailureLogs); empty: none.')
param logAnalyticsWorkspaceId string = ''

var storageBlobDataContributorRoleId = 'ba92f5b4-2d11-453d-a403-e96b0029c9fe'

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName

  resource blobService 'blobServices' existing = {
    name: 'default'

    resource deadLetterContainer 'containers' existing = {
      name: deadLetterContainerName
    }
  }
}

resource systemTopic 'Microsoft.EventGrid/systemTopics@2022-06-15' = {
  name: name
  location: location
  tags: tags
  identity: {
    type: 'SystemAssigned'
  }
  properties: {
    source: storage.id
    topicType: 'Microsoft.Storage.StorageAccounts'
  }
}

// Scoped to the dead-letter container only: the topic can write nothing else.
resource deadLetterWriter 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage::blobService::deadLetterContainer.id, systemTopic.id, storageBlobDataContributorRoleId)
  scope: storage::blobService::deadLetterContainer
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageBlobDataContributorRoleId)
    principalId: systemTopic.identity.principalId
    principalType: 'ServicePrincipal'
  }
}

// A BlobCreated event that cannot reach the app (app down, key rotated, handshake failed) is retried for 24 h and
// then dead-lettered; each failed delivery is logged here, with the reason.
resource topicDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = if (!empty(logAnalyticsWorkspaceId)) {
  name: 'to-log-analytics'
  scope: systemTopic
  properties: {
    workspaceId: logAnalyticsWorkspaceId
    logs: [
      {
        category: 'DeliveryFailures'
        enabled: true
      }
    ]
  }
}

output id string = systemTopic.id
output name string = systemTopic.name
