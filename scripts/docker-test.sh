#!/usr/bin/env bash
# The consortium in containers, end to end (make docker-test): build the image, make a
# 4-bank consortium (scripts/docker-setup.sh), start it with docker-compose on 127.0.0.1,
# move money with `bank` (the image's own, in a container), kill -9 a bank's container and
# start it again, and check that nothing was lost.
set -euo pipefail
cd "$(dirname "$0")/.."
IMAGE=${IMAGE:-bank-consortium:test}
PROJECT=consortium-test
FIRST=7101
# Docker: started here if this machine has it but it is not running (CI, as root).
if ! docker info >/dev/null 2>&1; then
  command -v dockerd >/dev/null || { echo "docker-test needs Docker (Debian: apt-get install docker.io docker-compose)" >&2; exit 1; }
  (dockerd >/tmp/dockerd.log 2>&1 &)
  for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
  docker info >/dev/null 2>&1 || { echo "dockerd did not start; see /tmp/dockerd.log" >&2; exit 1; }
fi
make image IMAGE="$IMAGE"
WORK=$(mktemp -d)
DIR=$WORK/consortium
compose() { CONSORTIUM_DIR=$DIR CONSORTIUM_IMAGE=$IMAGE docker-compose -f docker/docker-compose.yml -p "$PROJECT" "$@"; }
cleanup() {
  status=$?
  if [ $status -ne 0 ]; then compose logs --tail 40 || true; fi
  compose down -v >/dev/null 2>&1 || true
  rm -rf "$WORK"
  exit $status
}
trap cleanup EXIT
scripts/docker-setup.sh "$DIR" "$IMAGE" "$FIRST"
compose up -d
mkdir -p "$WORK/keys"
# The client, from the image: the CA to trust, the user's key folder, the teller's key.
bank() {
  docker run --rm -i --network host -v "$DIR/shared:/consortium:ro" -v "$WORK/keys:/keys" -v "$DIR/tellers:/tellers:ro" \
    "$IMAGE" bank --ca /consortium/ca.pem --keys /keys --timeout 20 "$@"
}
wait_up() {
  for _ in $(seq 1 120); do
    bank --bank "127.0.0.1:$1" status >/dev/null 2>&1 && return 0
    sleep 0.5
  done
  echo "bank 127.0.0.1:$1 did not come up" >&2
  return 1
}
for p in 7101 7102 7103 7104; do wait_up $p; done
A=127.0.0.1:7101; B=127.0.0.1:7102
ANA=52998224725
echo "== money moves"
bank --bank $A user register --cpf $ANA --name "Ana"
bank --bank $B user register --cpf $ANA --name "Ana"
bank --bank $A --json account open --kind personal --holder $ANA >/dev/null
bank --bank $B --json account open --kind business --holder $ANA >/dev/null
bank --bank $A --teller-key /tellers/127.0.0.1_7101.key deposit --to $A/000001 --amount 100.00 --id dep-1
bank --bank $A --user $ANA transfer --from $A/000001 --to $B/000001 --amount 25 --id t-1
echo "== kill -9 bank 2's container, then start it again"
compose kill -s KILL bank2
compose start bank2
wait_up 7102
echo "== nothing was lost"
check() {
  local got
  got=$(bank --bank "$1" --user $ANA --json account show --key "$2" | tr -d ' \n')
  case "$got" in
    *"\"balance\":$3,"*) echo "ok: $1/$2 balance $3" ;;
    *) echo "FAILED: $1/$2: expected balance $3, got $got" >&2; exit 1 ;;
  esac
}
check $A 000001 7500
check $B 000001 2500
status=$(bank --bank $A --user $ANA --json package-status --id t-1 | tr -d ' \n')
case "$status" in *'"status":"committed"'*) echo "ok: t-1 still committed" ;; *) echo "FAILED: t-1: $status" >&2; exit 1 ;; esac
echo "== the restarted bank takes part again"
bank --bank $B --user $ANA transfer --from $B/000001 --to $A/000001 --amount 5 --id t-2
check $A 000001 8000
check $B 000001 2000
echo "== the menu, from the image"
menu=$(echo 0 | bank --bank $A shell)
case "$menu" in *"register a user"*) echo "ok: bank shell shows the menu" ;; *) echo "FAILED: no menu: $menu" >&2; exit 1 ;; esac
echo "docker-test: OK"
