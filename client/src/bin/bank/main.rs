//! `bank`: the command-line client of the consortium. One command per action of the client
//! API, plus `shell`, an interactive menu like the original application's.
//!
//! - `args`: the command line (clap), with the help texts;
//! - `commands`: what each command does, and how it ends (exit codes);
//! - `render`: what people read (tables, outcomes, status);
//! - `shell`: the interactive menu.

#[macro_use]
mod help;
mod args;
mod commands;
mod render;
mod shell;
#[cfg(test)]
mod tests;

use args::{Cli, Cmd};
use bank_client::Client;
use clap::Parser;
use commands::{report, run, Ctx};
use shell::Shell;
use std::io::{self, IsTerminal, Write};

fn main() {
    let cli = Cli::parse();
    // A protected key file's passphrase: --passphrase-file, else BANK_PASSPHRASE, else asked.
    bank_client::keys::use_passphrase(bank_client::keys::PassphraseSource { file: cli.passphrase_file.clone(), prompt: true });
    let keys = commands::Keys::from_cli(&cli);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a tokio runtime");
    // HTTPS with the consortium's CA, or plain HTTP if asked: one transport for every call.
    let reach = bank_client::tls::choose(cli.ca.clone(), cli.plain_http, std::path::Path::new(bank_client::tls::MAKE_RUN_CA));
    // (`key show` and `key export` read the key folder only: they need no CA.)
    let local = matches!(&cli.cmd, Cmd::Key(args::KeyCmd::Show { .. } | args::KeyCmd::Export { .. }));
    let transport = match reach.and_then(|r| rt.block_on(async { bank_client::tls::transport(&r) })) {
        Ok(t) => t,
        Err(_) if local => rt.block_on(async { std::sync::Arc::new(consortium_net::tcp_transport()) }),
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    };
    let code = match cli.cmd {
        Cmd::Shell => {
            let client = Client::with_transport(cli.bank.clone(), cli.timeout, transport.clone());
            let stdin = io::stdin();
            let echo = !stdin.is_terminal();
            let mut input = stdin.lock();
            let (mut out, mut err) = (io::stdout(), io::stderr());
            let mut shell =
                Shell { rt: &rt, client, user: None, keys, input: &mut input, out: &mut out, err: &mut err, echo, budget: cli.timeout };
            shell.run();
            0
        }
        cmd => {
            let ctx =
                Ctx { client: Client::with_transport(cli.bank.clone(), cli.timeout, transport.clone()), json: cli.json, timeout: cli.timeout, keys };
            match rt.block_on(run(&ctx, cmd)) {
                Ok(()) => 0,
                Err(f) => report(&ctx, f),
            }
        }
    };
    let _ = io::stdout().flush();
    std::process::exit(code);
}

