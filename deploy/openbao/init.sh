#!/bin/sh
# One-shot set-up of the compose stack's OpenBao (the `openbao-init` service of deploy/compose.yaml,
# run in the OpenBao image on every `docker compose up`, before the gateways start):
#   1. on the first run, initialise the server (one unseal key share) and keep the unseal key and the
#      root token in the `openbao-init` volume;
#   2. unseal it (after every OpenBao restart);
#   3. make sure KV v2 is mounted at `secret/` and the policy deploy/openbao-policy.hcl is loaded;
#   4. give the gateways a token limited by that policy (orphan, 768 h, no default policy), written as
#      `AURORA_VAULT_TOKEN=…` to the file the gateways read through AURORA_CONFIG_FILE. A token with
#      more than 7 days left is kept, so re-running this does not cut off running gateways.
#
# SINGLE-HOST USE ONLY: keeping the unseal key and the root token on a volume beside the data is what
# makes this unattended. In production, hand the unseal key shares to their holders or use auto-unseal
# (a cloud KMS, a transit seal or the static seal), revoke the root token, and issue the gateway's token
# through AppRole or Kubernetes auth (docs/deploy.md).
set -eu

: "${BAO_ADDR:=http://openbao:8200}"
export BAO_ADDR
STATE_DIR=${AURORA_BAO_STATE_DIR:-/openbao-init}
TOKEN_FILE=${AURORA_BAO_TOKEN_FILE:-/run/aurora/vault.env}
POLICY_FILE=${AURORA_BAO_POLICY_FILE:-/etc/aurora/openbao-policy.hcl}
GATEWAY_UID=${AURORA_GATEWAY_UID:-10001}
MIN_TTL_SECONDS=604800

log() { echo "openbao-init: $*"; }

# `bao status` exits 0 when unsealed, 2 when sealed (or not initialised), 1 when it cannot tell.
status_code() {
	rc=0
	bao status >/dev/null 2>&1 || rc=$?
	echo "$rc"
}

tries=0
while [ "$(status_code)" = 1 ]; do
	tries=$((tries + 1))
	if [ "$tries" -ge 60 ]; then
		log "OpenBao at $BAO_ADDR did not answer within 60 s"
		exit 1
	fi
	sleep 1
done

mkdir -p "$STATE_DIR"
chmod 0700 "$STATE_DIR"

# `bao operator init -status` exits 0 when initialised, 2 when not.
initialised=0
bao operator init -status >/dev/null 2>&1 || initialised=$?
if [ "$initialised" = 2 ]; then
	log "initialising $BAO_ADDR (1 key share; kept in $STATE_DIR: single-host use only)"
	out=$(bao operator init -key-shares=1 -key-threshold=1)
	(
		umask 077
		echo "$out" | sed -n 's/^Unseal Key 1: //p' >"$STATE_DIR/unseal-key"
		echo "$out" | sed -n 's/^Initial Root Token: //p' >"$STATE_DIR/root-token"
	)
	if [ ! -s "$STATE_DIR/unseal-key" ] || [ ! -s "$STATE_DIR/root-token" ]; then
		log "could not read the unseal key and root token from \`bao operator init\`"
		exit 1
	fi
elif [ "$initialised" != 0 ]; then
	log "\`bao operator init -status\` failed"
	exit 1
fi

if [ "$(status_code)" = 2 ]; then
	log "unsealing"
	bao operator unseal "$(cat "$STATE_DIR/unseal-key")" >/dev/null
fi
if [ "$(status_code)" != 0 ]; then
	log "OpenBao is still sealed"
	exit 1
fi

BAO_TOKEN=$(cat "$STATE_DIR/root-token")
export BAO_TOKEN

if ! bao secrets list | grep -q '^secret/ '; then
	log "mounting KV v2 at secret/"
	bao secrets enable -path=secret -version=2 kv >/dev/null
fi
bao policy write aurora-gateway "$POLICY_FILE" >/dev/null
log "policy aurora-gateway written from $POLICY_FILE"

keep=no
if [ -s "$TOKEN_FILE" ]; then
	old=$(sed -n 's/^AURORA_VAULT_TOKEN=//p' "$TOKEN_FILE")
	ttl=$(bao token lookup -field=ttl "$old" 2>/dev/null || echo 0)
	case "$ttl" in
	'' | *[!0-9]*) ttl=0 ;;
	esac
	if [ "$ttl" -gt "$MIN_TTL_SECONDS" ]; then
		keep=yes
	fi
fi
if [ "$keep" = yes ]; then
	log "the gateways' token is valid for ${ttl}s more: kept"
else
	token=$(bao token create -policy=aurora-gateway -no-default-policy -orphan -ttl=768h \
		-display-name=aurora-gateway -field=token)
	mkdir -p "$(dirname "$TOKEN_FILE")"
	(
		umask 077
		printf 'AURORA_VAULT_TOKEN=%s\n' "$token" >"$TOKEN_FILE.new"
	)
	chown "$GATEWAY_UID" "$TOKEN_FILE.new" 2>/dev/null || true
	chmod 0400 "$TOKEN_FILE.new"
	mv -f "$TOKEN_FILE.new" "$TOKEN_FILE"
	log "issued the gateways a new token (policy aurora-gateway, 768h) in $TOKEN_FILE;" \
		"restart running gateways to use it"
fi
