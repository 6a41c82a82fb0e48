"""Schemathesis hook for `make api-fuzz`: signs every read as the fuzz run's registered user.

A read of user data carries the reader's signed read statement in the `authorization`
header (core/src/trust/read.rs):

    Consortium-Read v1 READER AUDIENCE TIME_MS NONCE SIG SCOPE

SIG is the reader's Ed25519 signature of the fields, each length-prefixed (u32, big
endian) after the domain `bank-consortium/read/v1`, the time as a big-endian u64. With it
the fuzzer gets past 401 on the reads and reaches the bank's checks behind it.

Environment: API_FUZZ_KEY_FILE (the user's key file: the Ed25519 seed, 64 hex digits),
API_FUZZ_CPF (the user's CPF), API_FUZZ_BANK (the audience: the bank's address as the
manifest lists it). `python3 api_fuzz_hook.py --self-test` checks the signed bytes against
a statement made by the Rust code (read::tests::a_statement_signed_by_another_implementation_is_the_same).
"""

import os
import secrets
import struct
import sys
import time
import urllib.parse

from nacl.signing import SigningKey

READ_DOMAIN = b"bank-consortium/read/v1"


def _put(out: bytearray, field: bytes) -> None:
    out += struct.pack(">I", len(field)) + field


def message(reader: str, audience: str, time_ms: int, nonce: bytes, scope: str) -> bytes:
    m = bytearray()
    _put(m, READ_DOMAIN)
    _put(m, reader.encode())
    _put(m, audience.encode())
    m += struct.pack(">Q", time_ms)
    _put(m, nonce)
    _put(m, scope.encode())
    return bytes(m)


def statement(seed: bytes, reader: str, audience: str, scope: str, time_ms: int, nonce: bytes) -> str:
    sig = SigningKey(seed).sign(message(reader, audience, time_ms, nonce, scope)).signature
    return f"Consortium-Read v1 {reader} {audience} {time_ms} {nonce.hex()} {sig.hex()} {scope}"


def bare_cpf(s: str) -> str:
    """The CPF as the bank names it in a scope: `123.456.789-09` becomes its 11 digits."""
    s = s.strip()
    if len(s) == 14 and s[3] == "." and s[7] == "." and s[11] == "-":
        return s[0:3] + s[4:7] + s[8:11] + s[12:14]
    return s


# Which scope each read route names (read.rs: scope_user, scope_accounts_of, ...).
SCOPES = {
    "/users/{cpf}": lambda p: "user/" + bare_cpf(p["cpf"]),
    "/users/{cpf}/accounts": lambda p: "accounts-of/" + bare_cpf(p["cpf"]),
    "/consortium/users/{cpf}/accounts": lambda p: "consortium/" + bare_cpf(p["cpf"]),
    "/accounts/{key}": lambda p: "account/" + p["key"],
    "/accounts/{key}/statement": lambda p: "statement/" + p["key"],
    "/packages/{id}": lambda p: "package/" + p["id"],
}


def header_for(path: str, params: dict, seed: bytes, cpf: str, bank: str) -> str | None:
    """The statement for a request to `path` (the template) with `params`, or None where
    there is none to make (not a read, or a value no header can carry: the bank answers 401)."""
    scope_of = SCOPES.get(path)
    if scope_of is None:
        return None
    try:
        # Schemathesis hands the values over percent-encoded, as they go in the path; the
        # bank decodes them before naming the scope.
        scope = scope_of({k: urllib.parse.unquote(str(v)) for k, v in (params or {}).items()})
    except KeyError:
        return None
    # A header carries printable ASCII, and loses whitespace at its end.
    if not scope.isprintable() or not scope.isascii() or scope != scope.rstrip():
        return None
    return statement(seed, cpf, bank, scope, int(time.time() * 1000), secrets.token_bytes(16))


def _self_test() -> None:
    # The same statement as the Rust test: seed [7; 32], nonce [1; 16], time 1_700_000_000_000.
    got = statement(bytes([7] * 32), "52998224725", "127.0.0.1:7001", "user/52998224725", 1_700_000_000_000, bytes([1] * 16))
    want = SELF_TEST_HEADER
    assert got == want, f"the hook signs other bytes than the bank checks:\n got  {got}\n want {want}"
    assert bare_cpf(" 529.982.247-25 ") == "52998224725"
    h = header_for("/accounts/{key}", {"key": "a%26b"}, bytes([7] * 32), "52998224725", "b:1")
    assert h.endswith(" account/a&b"), h
    assert header_for("/accounts/{key}", {"key": "%C3%A9"}, bytes([7] * 32), "52998224725", "b:1") is None
    assert header_for("/status", {}, bytes([7] * 32), "52998224725", "b:1") is None
    print("api_fuzz_hook: self-test passed (the statement matches the Rust code's)")


# What core/src/trust/read.rs's test makes for the statement in `_self_test`.
SELF_TEST_HEADER = (
    "Consortium-Read v1 52998224725 127.0.0.1:7001 1700000000000 01010101010101010101010101010101 "
    "e9f63f0ecfe2fd402010a73236f86fa0ccf3611e33347b318953a8ad67cc35d0dbeca32f7517526de465859cc0de3fc9c818aef2e74ce6035e61cfdcf45fcc0f user/52998224725"
)

if __name__ == "__main__":
    if sys.argv[1:] == ["--self-test"]:
        _self_test()
        sys.exit(0)
    if sys.argv[1:2] == ["--sign"]:
        # --sign PATH_TEMPLATE NAME=VALUE...: the header, for the run script's own checks.
        seed = bytes.fromhex(open(os.environ["API_FUZZ_KEY_FILE"]).read().strip())
        params = dict(a.split("=", 1) for a in sys.argv[3:])
        print(header_for(sys.argv[2], params, seed, os.environ["API_FUZZ_CPF"], os.environ["API_FUZZ_BANK"]))
        sys.exit(0)
    sys.exit("usage: api_fuzz_hook.py --self-test | --sign PATH_TEMPLATE NAME=VALUE...")
elif "schemathesis" in sys.modules:
    # Loaded by schemathesis (SCHEMATHESIS_HOOKS): sign its reads.
    import schemathesis

    _SEED = bytes.fromhex(open(os.environ["API_FUZZ_KEY_FILE"]).read().strip())
    _CPF = os.environ["API_FUZZ_CPF"]
    _BANK = os.environ["API_FUZZ_BANK"]

    # No caching (each statement is good once: its nonce) and no retry on 401 (a refused
    # statement is an answer to check, not a token to refresh).
    @schemathesis.auth(refresh_interval=None, retry_on=[])
    class ReadStatement:
        def get(self, case, context):
            return True

        def set(self, case, data, context):
            h = header_for(context.operation.path, case.path_parameters, _SEED, _CPF, _BANK)
            if h is not None:
                case.headers = dict(case.headers or {})
                case.headers["authorization"] = h

    # What the fuzzer reached: answers by operation and status, and the first few reads the
    # bank refused for their scope (the hook and the bank naming one thing differently),
    # written to API_FUZZ_TALLY when the run ends.
    import atexit
    import collections
    import json
    import threading

    _LOCK = threading.Lock()
    _TALLY: dict = collections.defaultdict(collections.Counter)
    _SCOPE_REFUSED: list = []

    @schemathesis.hook
    def after_call(context, case, response):
        op = f"{case.operation.method.upper()} {case.operation.path}"
        with _LOCK:
            _TALLY[op][str(response.status_code)] += 1
            if response.status_code == 403 and len(_SCOPE_REFUSED) < 20:
                text = getattr(response, "text", "")
                if '"wrong_scope"' in text:
                    _SCOPE_REFUSED.append({"path_parameters": {k: str(v) for k, v in case.path_parameters.items()}, "answer": text})

    @atexit.register
    def _write_tally():
        out = os.environ.get("API_FUZZ_TALLY")
        if out:
            with open(out, "w") as f:
                json.dump({"answers": {k: dict(v) for k, v in sorted(_TALLY.items())}, "scope_refused": _SCOPE_REFUSED}, f, indent=1)
