// The app's user-assigned managed identity: every connection (storage, Key Vault, Application Insights,
// Azure ML) authenticates as it, so no key or connection secret is stored anywhere.
param name string
param location string
param tags object = {}

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: name
  location: location
  tags: tags
}

output id string = identity.id
output name string = identity.name
output clientId string = identity.properties.clientId
output principalId string = identity.properties.principalId
