#!/usr/bin/env bash
# Makes what a consortium of 4 banks in containers needs, with the image's own `node` (as an
# operator would on each machine), under DIR:
#   DIR/bankN/    a bank's data volume: its key (node init), certificate, node.toml
#   DIR/shared/   the manifest and the CA's certificate, mounted read-only in every bank
#   DIR/ca/       the consortium CA's key: signs the banks' certificates; never mounted
#   DIR/tellers/  the tellers' keys (the operators' credentials at the counter)
# Usage: scripts/docker-setup.sh DIR [IMAGE] [FIRST_PORT]
set -euo pipefail
DIR=${1:?usage: docker-setup.sh DIR [IMAGE] [FIRST_PORT]}
IMAGE=${2:-bank-consortium:latest}
FIRST=${3:-7101}
mkdir -p "$DIR/shared" "$DIR/ca" "$DIR/tellers"
DIR=$(cd "$DIR" && pwd)
run() { docker run --rm --network none "$@"; }
run -v "$DIR/ca:/ca" "$IMAGE" node tls-ca --out-dir /ca >/dev/null
cp "$DIR/ca/ca.pem" "$DIR/shared/ca.pem"
: > "$DIR/shared/consortium.toml.new"
for n in 1 2 3 4; do
  port=$((FIRST + n - 1))
  addr="127.0.0.1:$port"
  mkdir -p "$DIR/bank$n"
  run -v "$DIR/bank$n:/data" "$IMAGE" node init --data-dir /data --address "$addr" 2>/dev/null >> "$DIR/shared/consortium.toml.new"
  echo >> "$DIR/shared/consortium.toml.new"
  run -v "$DIR/bank$n:/data" -v "$DIR/ca:/ca:ro" "$IMAGE" node tls-cert --ca-dir /ca --address "$addr" --out-dir /data >/dev/null
  teller=$(run -v "$DIR/tellers:/tellers" "$IMAGE" node teller-key --out "/tellers/127.0.0.1_$port.key" 2>/dev/null)
  cat > "$DIR/bank$n/node.toml" <<TOML
listen = "$addr"
manifest = "/consortium/consortium.toml"
data_dir = "/data"
tls_cert = "/data/cert.pem"
tls_key = "/data/key.pem"
tls_ca = "/consortium/ca.pem"
teller_keys = ["$teller"]
TOML
done
mv "$DIR/shared/consortium.toml.new" "$DIR/shared/consortium.toml"
echo "consortium of 4 banks on 127.0.0.1:$FIRST..$((FIRST + 3)) made in $DIR"
