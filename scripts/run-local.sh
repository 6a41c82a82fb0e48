#!/usr/bin/env bash
# A local consortium of 4 banks on 127.0.0.1:7001-7004, data under ./data/. Ctrl-C stops all.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-${CARGO_TARGET_DIR:-target}/debug}
PORTS="7001 7002 7003 7004"
MANIFEST=data/consortium.toml
mkdir -p data
# Each bank's key (created once, kept in its data folder) and the manifest listing them all:
# what an operator does with `node init` on each machine, then one shared file.
if [ ! -f "$MANIFEST" ]; then
  : > "$MANIFEST.new"
  for port in $PORTS; do
    "$BIN/node" init --data-dir "data/$port" --address "127.0.0.1:$port" >> "$MANIFEST.new" 2>/dev/null
    echo >> "$MANIFEST.new"
  done
  mv "$MANIFEST.new" "$MANIFEST"
fi
# TLS: the consortium's certificate authority, made once (data/ca.pem, and its key data/ca.key),
# and each bank's certificate for its address, signed by it (issued anew at each start). Banks
# serve HTTPS and check each other's certificates against data/ca.pem; `bank`, run from this
# folder, finds data/ca.pem by itself (elsewhere: --ca FILE or BANK_CA).
"$BIN/node" tls-ca --out-dir data >/dev/null
for port in $PORTS; do
  "$BIN/node" tls-cert --ca-dir data --address "127.0.0.1:$port" --out-dir "data/$port" >/dev/null
done
# Each bank's teller key (an operator's, at the counter): cash deposits need its signature.
# `bank deposit` finds it at data/tellers/HOST_PORT.key.
mkdir -p data/tellers
declare -A teller
for port in $PORTS; do
  teller[$port]=$("$BIN/node" teller-key --out "data/tellers/127.0.0.1_$port.key" 2>/dev/null)
done
pids=()
stop() {
  trap - INT TERM EXIT
  echo
  echo "stopping the banks..."
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  echo "stopped; data kept in ./data (delete it to start over)"
}
trap stop INT TERM EXIT
for port in $PORTS; do
  RUST_LOG=${RUST_LOG:-warn} "$BIN/node" --listen "127.0.0.1:$port" --manifest "$MANIFEST" --data-dir "data/$port" \
    --teller-key "${teller[$port]}" \
    --tls-cert "data/$port/cert.pem" --tls-key "data/$port/key.pem" --tls-ca data/ca.pem \
    2> >(sed -u "s/^/[bank $port] /" >&2) &
  pids+=($!)
done
for port in $PORTS; do
  for _ in $(seq 1 100); do
    "$BIN/bank" --bank "127.0.0.1:$port" status >/dev/null 2>&1 && break
    sleep 0.1
  done
done
cat <<MSG

  4 banks are up: 127.0.0.1:7001 .. 127.0.0.1:7004 (data in ./data, logs below).
  Their keys are in data/PORT/bank.key, the manifest in $MANIFEST; calls between
  banks are signed, and anything else on /peer/... is refused. Everything goes over
  TLS: the consortium's CA is data/ca.pem (\`bank\` finds it when run from here;
  elsewhere give --ca FILE or BANK_CA), each bank's certificate data/PORT/cert.pem.
  Tellers' keys (cash deposits) are in data/tellers/. Users' keys are made by
  \`user register\` on this machine (~/.local/share/bank/keys); money leaves an
  account only with a holder's.
  In another terminal:

    $BIN/bank --bank 127.0.0.1:7001 user register --cpf 529.982.247-25 --name "Ana"
    $BIN/bank --bank 127.0.0.1:7001 account open --kind personal --holder 52998224725
    $BIN/bank --bank 127.0.0.1:7001 deposit --to 127.0.0.1:7001/000001 --amount 100.00
    $BIN/bank --bank 127.0.0.1:7001 --user 52998224725 withdraw --from 000001 --amount 10
    $BIN/bank --bank 127.0.0.1:7003 consortium-accounts --cpf 52998224725
    $BIN/bank --bank 127.0.0.1:7002 status
    $BIN/bank shell                     # the interactive menu

  Ctrl-C stops all four.
MSG
wait
