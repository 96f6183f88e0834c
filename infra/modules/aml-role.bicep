// The least role that lets the app list Azure ML compute instances, stop them (nightly shutdown) and start them
// (working-hours schedules): read computes and the stop and start actions, nothing else (no create, delete,
// restart, keys or workspace secrets). A custom role is
// defined once per environment and assignable in every subscription that holds a managed workspace.
targetScope = 'subscription'

param roleGuid string
@description('Unique in the tenant, so it carries the environment name and token.')
param roleName string
param assignableScopes array

resource computeInstanceStopper 'Microsoft.Authorization/roleDefinitions@2022-04-01' = {
  name: roleGuid
  properties: {
    roleName: roleName
    description: 'List Azure ML compute instances, stop and start them (shutdown and working-hours schedules). Nothing else.'
    type: 'CustomRole'
    assignableScopes: assignableScopes
    permissions: [
      {
        actions: [
          'Microsoft.MachineLearningServices/workspaces/computes/read'
          'Microsoft.MachineLearningServices/workspaces/computes/stop/action'
          'Microsoft.MachineLearningServices/workspaces/computes/start/action'
        ]
        notActions: []
        dataActions: []
        notDataActions: []
      }
    ]
  }
}

output id string = computeInstanceStopper.id
