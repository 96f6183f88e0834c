"""Loopback stand-ins of the Azure services the app calls (ARM, managed identity, Key Vault), at the wire level."""
