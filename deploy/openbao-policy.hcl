# Least-privilege OpenBao (or Vault) policy for the Aurora gateway.
# Assumes the KV v2 engine at mount `secret` (AURORA_VAULT_MOUNT=secret) and the gateway's default
# root prefix `aurora/`: it reads and writes nothing else.
#
#   bao policy write aurora-gateway deploy/openbao-policy.hcl
#   bao token create -policy=aurora-gateway -period=768h   # or an AppRole / Kubernetes auth role
#
# Secret versions: write (create/update), read, delete the latest version.
path "secret/data/aurora/*" {
  capabilities = ["create", "read", "update", "delete"]
}

# Metadata: list a user's folders, read versions, and delete a secret with all its versions
# (disconnect removes the metadata, so nothing of the secret is left behind).
path "secret/metadata/aurora/*" {
  capabilities = ["read", "list", "delete"]
}
