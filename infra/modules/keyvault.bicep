// Key Vault in RBAC mode (no access policies): the app's identity reads secrets through the
// Key Vault Secrets User role, and app settings refer to them with @Microsoft.KeyVault(SecretUri=...).
param name string
param location string
param tags object = {}

@secure()
@description('{ SETTING_NAME: value }; stored as secret SETTING-NAME (Key Vault names allow letters, digits and hyphens).')
param secrets object = {}

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  name: name
  location: location
  tags: tags
  properties: {
    tenantId: subscription().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 90
    publicNetworkAccess: 'Enabled'
  }
}

resource vaultSecrets 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = [
  for secret in items(secrets): {
    parent: vault
    name: replace(secret.key, '_', '-')
    properties: {
      value: secret.value
    }
  }
]

output id string = vault.id
output name string = vault.name
output endpoint string = vault.properties.vaultUri
