# OpenBao server configuration for deploy/compose.yaml: a single node with integrated (Raft) storage,
# not dev mode. It starts sealed and uninitialised; the one-shot `openbao-init` service
# (deploy/openbao/init.sh) initialises it on the first run and unseals it on every run.
#
# LOCAL / SINGLE-HOST ONLY in one respect: the listener serves plain HTTP on the compose network
# (the port is not published). Anywhere the traffic leaves one host, give the listener a certificate
# (tls_cert_file, tls_key_file) and the gateway an https:// AURORA_VAULT_ADDR.

ui = false
disable_mlock = true # integrated storage: mlock is not recommended; swap should be off on the host

storage "raft" {
  path    = "/openbao/file"
  node_id = "openbao-1"
}

listener "tcp" {
  address     = "0.0.0.0:8200"
  tls_disable = true # see above
}

api_addr     = "http://openbao:8200"
cluster_addr = "http://openbao:8201"
