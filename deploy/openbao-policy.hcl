# Least-privilege OpenBao (or Vault) policy for the Aurora gateway: exactly the paths it uses.
# Assumes the KV v2 engine at mount `secret` (AURORA_VAULT_MOUNT) and the gateway's default root folder
# `aurora` (AURORA_VAULT_PREFIX); with other values, replace `secret/` and `aurora/` below.
# Everything the gateway keeps lives at `secret/data/aurora/users/<user>/<provider>/<connection>` plus
# `secret/data/aurora/system/cache-key`.
#
#   bao policy write aurora-gateway deploy/openbao-policy.hcl
#   bao token create -policy=aurora-gateway -no-default-policy -orphan -ttl=768h
# (or an AppRole / Kubernetes auth role bound to this policy: see docs/deploy.md).
#
# Checked against a real OpenBao server by `cargo xtask deploy-check`: the operations below succeed
# with a token holding only this policy, and a read outside `aurora/` is refused.

# Secret versions. kv2 `set` writes a new version (create: the first, update: later ones, including
# check-and-set writes with `options.cas`); kv2 `read` reads the latest one with its version number,
# which is what a check-and-set write names. No `delete`: the gateway never soft-deletes a version,
# it removes the whole secret through its metadata (below).
path "secret/data/aurora/*" {
  capabilities = ["create", "read", "update"]
}

# Metadata. `list`: the readiness ping (LIST secret/metadata/aurora), a user's folders and the
# reconciler's scan of `users/`; `read`: the reconciler reads when a secret without a connection row
# was written (it deletes only those older than its grace period); `delete`: disconnect (and the
# reconciler) remove a secret with all its versions (kv2 `delete_metadata`), so nothing of it is left
# behind.
path "secret/metadata/aurora/*" {
  capabilities = ["list", "read", "delete"]
}
