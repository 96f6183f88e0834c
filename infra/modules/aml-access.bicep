// Grants the app's identity its Azure ML role on one workspace (deployed into the workspace's own
// resource group, which may be in another subscription).
param workspaceName string
param principalId string
@description('Role definition GUID: the custom compute-stopper role or AzureML Compute Operator.')
param roleGuid string

resource workspace 'Microsoft.MachineLearningServices/workspaces@2024-04-01' existing = {
  name: workspaceName
}

resource computeAccess 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(workspace.id, principalId, roleGuid)
  scope: workspace
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleGuid)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}
