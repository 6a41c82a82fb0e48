//! Help texts shared by several commands.

macro_rules! ref_help {
    () => {
        "Accounts are written BANK/ACCOUNT: BANK is a bank's address (host:port), ACCOUNT the account
key at that bank, e.g. 127.0.0.1:7002/000001. A bare ACCOUNT means an account at the bank given
by --bank. Amounts are written 12.50 (also 12,50 or 12); they travel as integer cents."
    };
}

macro_rules! id_help {
    () => {
        "Every movement of money is a package with an id (idempotency key). Without --id one is
generated and printed. Re-running with the same --id is a safe retry: the bank never executes a
package twice and answers with the outcome it already has. The command waits for the outcome up
to --timeout; if the package is still pending then, check it later with
`bank package-status --id ID`."
    };
}

macro_rules! exit_help {
    () => {
        "Exit codes: 0 done; 1 the bank refused (API error) or the package was aborted; 2 usage error;
3 a bank is unreachable or did not answer; 4 the package is still pending after --timeout.
Errors are printed to stderr as `error: <message> (<code>)`."
    };
}

macro_rules! ops_file_help {
    () => {
        "An operations file holds operations in the API's wire shape:
  JSON: [{\"kind\":\"transfer\",\"from\":{\"bank\":\"127.0.0.1:7001\",\"account\":\"000001\"},
          \"to\":{\"bank\":\"127.0.0.1:7002\",\"account\":\"000003\"},\"amount\":1250}]
        or {\"id\":\"...\",\"operations\":[...]} (the id is optional; --id, if given, must match it)
  TOML: id = \"...\"            # optional
        [[operations]]
        kind = \"deposit\"
        to = { bank = \"127.0.0.1:7001\", account = \"000001\" }
        amount = 500
kind is transfer (from and to), deposit (to) or withdraw (from). A number amount is in cents,
as on the wire (1250 = 12.50); a string amount is read like --amount (\"12.50\"). An account may
also be a string \"BANK/ACCOUNT\". A file named *.toml is TOML; any other is JSON."
    };
}
