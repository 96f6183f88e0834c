// Key Vault in RBAC mode (no access policies): the app's identity reads secrets through the
// Key Vault Secrets User role, and app settings refer to them with @Microsoft.KeyVault(SecretUri=...).
param name string
param location string
param tags object = {}

@secure()
@description('{ SETTING_NAME: value }; stored as secret SETTING-NAME (Key Vault names allow letters, digits and hyphens).')
param secrets object = {}

@description('Log Analytics workspace receiving the vault\'s audit log (every secret read, by whom); empty: none.')
param logAnalyticsWorkspaceId string = ''

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  // checkov:skip=CKV_AZURE_109: this deployment has no virtual network: the Functions host, Event Grid and operators reach it over its public endpoint, and every request needs an Entra token (RBAC)
  // checkov:skip=CKV_AZURE_189: this deployment has no virtual network: the Functions host, Event Grid and operators reach it over its public endpoint, and every request needs an Entra token (RBAC)
  // checkov:skip=CKV_AZURE_110: purge protection cannot be turned off again and would keep `azd down --purge` from freeing the name; soft delete keeps deleted secrets 90 days
  // checkov:skip=CKV_AZURE_42: recoverable through soft delete (90 days); purge protection is left off, see CKV_AZURE_110
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
    // checkov:skip=CKV_AZURE_41: an expiry would make the app setting that references the secret fail at that date with no one told; secrets are rotated by redeploying appSecrets
    parent: vault
    name: replace(secret.key, '_', '-')
    properties: {
      value: secret.value
      contentType: 'text/plain'
    }
  }
]

resource vaultDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = if (!empty(logAnalyticsWorkspaceId)) {
  name: 'to-log-analytics'
  scope: vault
  properties: {
    workspaceId: logAnalyticsWorkspaceId
    logs: [
      {
        category: 'AuditEvent'
        enabled: true
      }
    ]
  }
}

output id string = vault.id
output name string = vault.name
output endpoint string = vault.properties.vaultUri
