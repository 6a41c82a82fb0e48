#!/usr/bin/env bash
# make api-fuzz: a third-party property-based fuzzer (schemathesis, from PyPI, pinned) against
# a running consortium of 4 banks on loopback, driven by the document the banks serve
# (GET /openapi.json). Checks: all of schemathesis's (no 5xx, every status, content type,
# header and body as documented, every request that breaks the document refused, reads
# without the statement refused, undocumented methods refused, ...) but
# positive_data_acceptance: a request of the documented shape is still refused for what no
# schema can say (a CPF's check digits, a signature that verifies, a member bank). A hook (scripts/api_fuzz_hook.py) signs reads as a
# registered user, so the fuzzer gets past 401. Afterwards: every bank ready, nothing left in
# doubt, no package executed, the user's money where it was.
#
# Environment: API_FUZZ_CHECKS (schemathesis's --checks, default all), API_FUZZ_SECONDS (the fuzzer's time budget, default 150), API_FUZZ_EXAMPLES
# (examples per operation and phase, default 40), API_FUZZ_SEED (default 1), API_FUZZ_PORT
# (first of 4 ports, default 7301), BIN (the binaries, default $CARGO_TARGET_DIR or target, /debug).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-${CARGO_TARGET_DIR:-target}/debug}
DIR=target/api-fuzz
VENV=$DIR/venv
SCHEMATHESIS=schemathesis==4.32.5
PYNACL=pynacl==1.6.2
SECONDS_BUDGET=${API_FUZZ_SECONDS:-150}
EXAMPLES=${API_FUZZ_EXAMPLES:-40}
SEED=${API_FUZZ_SEED:-1}
BASE=${API_FUZZ_PORT:-7301}
PORTS="$BASE $((BASE + 1)) $((BASE + 2)) $((BASE + 3))"
FIRST=127.0.0.1:$BASE
CPF=52998224725 # the document's example CPF: the fuzzer's explicit examples read this user
mkdir -p "$DIR"

# ---- the fuzzer, in its own venv (python3-venv from apt where Debian's python3 lacks it) ----
if ! command -v python3 >/dev/null 2>&1; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 python3-venv
fi
if [ ! -x "$VENV/bin/python" ]; then
  if ! python3 -m venv "$VENV" 2>/dev/null; then
    rm -rf "$VENV"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv
    python3 -m venv "$VENV"
  fi
fi
if [ "$(cat "$VENV/.installed" 2>/dev/null)" != "$SCHEMATHESIS $PYNACL" ]; then
  "$VENV/bin/pip" install -q --disable-pip-version-check "$SCHEMATHESIS" "$PYNACL"
  echo "$SCHEMATHESIS $PYNACL" > "$VENV/.installed"
fi
PY=$VENV/bin/python
# The hook signs the same bytes as the Rust code (the Rust side: read::tests).
"$PY" scripts/api_fuzz_hook.py --self-test

# ---- 4 banks on loopback, plain HTTP, fresh data ----
for b in node bank; do
  [ -x "$BIN/$b" ] || { echo "api-fuzz: $BIN/$b is missing: cargo build -p node -p bank-client --bins" >&2; exit 2; }
done
DATA=$DIR/data
rm -rf "$DATA" && mkdir -p "$DATA/tellers" "$DATA/keys"
MANIFEST=$DATA/consortium.toml
: > "$MANIFEST"
for port in $PORTS; do
  "$BIN/node" init --data-dir "$DATA/$port" --address "127.0.0.1:$port" >> "$MANIFEST" 2>/dev/null
  echo >> "$MANIFEST"
done
pids=()
stop() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap stop EXIT
for port in $PORTS; do
  teller=$("$BIN/node" teller-key --out "$DATA/tellers/127.0.0.1_$port.key" 2>/dev/null)
  RUST_LOG=${RUST_LOG:-warn} "$BIN/node" --listen "127.0.0.1:$port" --manifest "$MANIFEST" --data-dir "$DATA/$port" \
    --teller-key "$teller" --plain-http 2> "$DATA/bank-$port.log" &
  pids+=($!)
done
ready() {
  "$PY" - "$@" <<'EOF'
import sys, time, urllib.request
for bank in sys.argv[1:]:
    for _ in range(300):
        try:
            if urllib.request.urlopen(f"http://{bank}/health/ready", timeout=2).status == 200:
                break
        except Exception:
            pass
        time.sleep(0.1)
    else:
        sys.exit(f"api-fuzz: bank {bank} is not ready")
EOF
}
ready $(for p in $PORTS; do echo "127.0.0.1:$p"; done)

# ---- a user with money: the fuzzer reads as them (the CPF, account key and package id are
# the document's examples, so its explicit examples read what exists) ----
bank() { "$BIN/bank" --plain-http --keys "$DATA/keys" "$@" >/dev/null; }
bank --bank "$FIRST" user register --cpf "$CPF" --name "Fuzz User"
bank --bank "$FIRST" account open --kind personal --holder "$CPF"
bank --bank "$FIRST" --teller-key "$DATA/tellers/127.0.0.1_$BASE.key" deposit --id deposit-1 --to "$FIRST/000001" --amount 100.00
export API_FUZZ_KEY_FILE=$DATA/keys/$CPF.key API_FUZZ_CPF=$CPF API_FUZZ_BANK=$FIRST
export PYTHONPATH=scripts

# What the run must leave as it found it: the user's accounts, every bank's executed packages.
snapshot() {
  "$PY" - $PORTS <<'EOF'
import json, os, sys, urllib.request
from api_fuzz_hook import header_for
seed = bytes.fromhex(open(os.environ["API_FUZZ_KEY_FILE"]).read().strip())
cpf, first = os.environ["API_FUZZ_CPF"], os.environ["API_FUZZ_BANK"]
def get(url, headers={}):
    return json.load(urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10))
h = header_for("/consortium/users/{cpf}/accounts", {"cpf": cpf}, seed, cpf, first)
banks = get(f"http://{first}/consortium/users/{cpf}/accounts", {"authorization": h})["banks"]
assert all(b["reachable"] for b in banks), banks
accounts = sorted((a["bank"], a["key"], a["balance"], a["blocked"], a["held"]) for b in banks for a in b["accounts"])
statuses = [get(f"http://127.0.0.1:{p}/status") for p in sys.argv[1:]]
executed = {s["bank"]: (s["counters"]["committed"], s["counters"]["aborted"], s["counters"]["executed"]) for s in statuses}
doubt = {s["bank"]: (s["queued"], s["in_doubt"]) for s in statuses}
print(json.dumps({"accounts": accounts, "executed": executed, "doubt": doubt}, sort_keys=True))
EOF
}
before=$(snapshot)
echo "api-fuzz: before: $before"
case "$before" in *'"127.0.0.1:'$BASE'", "000001", 10000, 0, 0'*) ;; *) echo "api-fuzz: the signed read does not show the user's deposit" >&2; exit 1 ;; esac

# ---- the fuzzer ----
echo "api-fuzz: schemathesis against http://$FIRST/openapi.json (at most ${SECONDS_BUDGET} s, $EXAMPLES examples, seed $SEED)"
status=0
API_FUZZ_TALLY=$DIR/answers.json SCHEMATHESIS_HOOKS=api_fuzz_hook "$VENV/bin/schemathesis" run "http://$FIRST/openapi.json" \
  --checks "${API_FUZZ_CHECKS:-all}" --exclude-checks positive_data_acceptance \
  --max-examples "$EXAMPLES" --max-time "$SECONDS_BUDGET" --seed "$SEED" --workers 2 --no-color \
  --report junit --report-dir "$DIR/report" || status=$?

# ---- no harm done ----
ready $(for p in $PORTS; do echo "127.0.0.1:$p"; done)
after=$(snapshot)
echo "api-fuzz: after:  $after"
if [ "$before" != "$after" ]; then
  echo "api-fuzz: the run changed the books or left something in doubt" >&2
  status=1
fi
if grep -h -i "panicked" "$DATA"/bank-*.log >&2; then
  echo "api-fuzz: a bank panicked (logs in $DATA)" >&2
  status=1
fi
# What the fuzzer reached: answers by route and status, and the refusals by reason at the bank.
"$PY" -c 'import json,sys; [print("api-fuzz:", k, v) for k, v in json.load(open(sys.argv[1]))["answers"].items()]' "$DIR/answers.json" || true
"$PY" -c 'import json,sys,urllib.request; print("api-fuzz: refused at the fuzzed bank, by reason:", json.dumps(json.load(urllib.request.urlopen(sys.argv[1]))["counters"]["refused"], sort_keys=True))' "http://$FIRST/status"
[ "$status" = 0 ] && echo "api-fuzz: passed (no server error, every answer as documented, no harm)"
exit "$status"
