// The least role that lets the app list Azure ML compute instances, stop them (nightly shutdown) and start them
// (working-hours schedules): read computes and the stop and start actions, nothing else (no create, delete,
// restart, keys or workspace secrets). A custom role is defined once per environment and assignable in every
// subscription that holds a managed workspace. Its permissions live in infra/aml-role.json, which the preprovision
// hook also reads: it creates the same definition before this deployment and waits until every workspace
// subscription sees it, so the assignments of this deployment do not race the definition (RoleDefinitionDoesNotExist).
targetScope = 'subscription'

param roleGuid string
@description('Unique in the tenant, so it carries the environment name and the role id.')
param roleName string
param assignableScopes array

var role = loadJsonContent('../aml-role.json')

resource computeInstanceStopper 'Microsoft.Authorization/roleDefinitions@2022-04-01' = {
  name: roleGuid
  properties: {
    roleName: roleName
    description: role.description
    type: 'CustomRole'
    assignableScopes: assignableScopes
    permissions: [
      {
        actions: role.actions
        notActions: []
        dataActions: []
        notDataActions: []
      }
    ]
  }
}

output id string = computeInstanceStopper.id
