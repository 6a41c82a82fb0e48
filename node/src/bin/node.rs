//! `node`: one bank of the consortium, as a server.

use clap::Parser;
use node::config::Config;
use std::path::PathBuf;

/// A bank of the consortium: serves the client API and takes part in the token ring.
///
/// First, once per bank: `node init --data-dir data/7001 --address 127.0.0.1:7001` creates the
/// bank's key and prints its entry for the consortium manifest. Put every bank's entry in one
/// manifest file, the same at every bank, then start each bank:
///
///   node --listen 127.0.0.1:7001 --manifest consortium.toml --data-dir data/7001
///   --tls-cert data/7001/cert.pem --tls-key data/7001/key.pem --tls-ca data/ca.pem
///
/// TLS: `node tls-ca --out-dir data` makes the consortium's CA once; `node tls-cert --ca-dir
/// data --address 127.0.0.1:7001 --out-dir data/7001` a bank's certificate. Without TLS, a
/// bank starts only with --plain-http (development).
///
/// Banks sign every call between them with their keys and refuse calls that are not signed by
/// another bank of the same manifest.
///
/// Logs go to stderr; set RUST_LOG (e.g. RUST_LOG=node=debug) to change what is shown.
#[derive(Parser, Debug)]
#[command(version, args_conflicts_with_subcommands = true)]
struct Args {
    #[command(subcommand)]
    command: Option<Command>,
    /// Address to listen on (host:port).
    #[arg(long)]
    listen: Option<String>,
    /// Address the other banks know this one by, if not --listen.
    #[arg(long)]
    advertise: Option<String>,
    /// The consortium manifest (TOML): every bank's address and public key, and the timings
    /// every bank shares.
    #[arg(long)]
    manifest: Option<PathBuf>,
    /// Where this bank keeps its data and its private key (created if missing). Restart with
    /// the same folder to keep every acknowledged write.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// A teller's public key (hex, from `node teller-key`): cash deposits into this bank's
    /// accounts need a signature of one of them. Repeat for several tellers.
    #[arg(long = "teller-key", value_name = "HEX")]
    teller_keys: Vec<String>,
    /// Register a user only with an operator's approval (their teller key's signature,
    /// `bank --as-teller user approve`): the person's identity checked at the counter.
    #[arg(long)]
    require_approval: bool,
    /// This bank's TLS certificate (PEM, for its address, signed by the consortium's CA;
    /// `node tls-cert` makes it). With --tls-key and --tls-ca the bank serves HTTPS and calls
    /// the other banks over HTTPS.
    #[arg(long, value_name = "FILE")]
    tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long, value_name = "FILE")]
    tls_key: Option<PathBuf>,
    /// The consortium's CA (PEM; `node tls-ca` makes it): the other banks' certificates must
    /// be signed by it.
    #[arg(long, value_name = "FILE")]
    tls_ca: Option<PathBuf>,
    /// Development only: serve and call plain HTTP, without TLS. A bank needs either this or
    /// the three TLS files.
    #[arg(long)]
    plain_http: bool,
    /// TOML file with the same keys (listen, advertise, manifest, data_dir, teller_keys,
    /// require_approval, tls_cert, tls_key, tls_ca, plain_http, and the timing
    /// keys: peer_timeout_ms, package_wait_ms, idle_hold_ms, idle_hold_max_ms, token_loss_ms,
    /// startup_check_ms, block_ms, resolve_after_ms, presume_abort_ms, ping_backoff_max_ms;
    /// the manifest's [timing] wins for the shared ones). Flags win over the file.
    #[arg(long)]
    config: Option<PathBuf>,
}

#[derive(clap::Subcommand, Debug)]
enum Command {
    /// Creates this bank's key in its data folder (if it has none) and prints its entry for
    /// the consortium manifest. The private key never leaves the folder.
    Init {
        /// The bank's data folder.
        #[arg(long)]
        data_dir: PathBuf,
        /// The address the other banks reach this one at (host:port).
        #[arg(long)]
        address: String,
    },
    /// Makes a teller's key pair (if FILE does not exist yet) and prints its public key for
    /// the bank's `teller_keys`. The teller key is the operator's credential at the counter:
    /// cash deposits, approving registrations, resetting a user's lost key. Its private key
    /// stays with the teller, not on the server.
    TellerKey {
        /// Where the teller's private key is kept (created readable by its owner only).
        #[arg(long)]
        out: PathBuf,
    },
    /// Makes the consortium's TLS certificate authority (ca.pem, and its private key ca.key,
    /// readable by its owner only) in a folder, unless it is there already. Every bank and
    /// client trusts ca.pem (`--tls-ca`, `bank --ca`); ca.key signs the banks' certificates.
    TlsCa {
        /// Where ca.pem and ca.key go.
        #[arg(long)]
        out_dir: PathBuf,
    },
    /// Issues a bank's TLS certificate for its address (cert.pem, and a new key key.pem,
    /// readable by its owner only), signed by the CA made by `node tls-ca`. Replaces an
    /// earlier certificate in the folder.
    TlsCert {
        /// The folder of the CA (ca.pem and ca.key).
        #[arg(long)]
        ca_dir: PathBuf,
        /// The address the bank is reached at (host:port): its host, an IP address or a DNS
        /// name, is what clients and banks check the certificate against.
        #[arg(long)]
        address: String,
        /// Where cert.pem and key.pem go (the bank's data folder, say).
        #[arg(long)]
        out_dir: PathBuf,
    },
    /// The operator's tools on a stopped bank (a running bank holds its database: use
    /// `bank admin ... --as-teller` then): in-doubt packages, backup, restore, reconciliation,
    /// fingerprints.
    Admin {
        #[command(subcommand)]
        cmd: node::admin::cli::AdminCmd,
    },
}

fn init(data_dir: &std::path::Path, address: &str) -> Result<(), String> {
    let (host, port) = address.rsplit_once(':').ok_or_else(|| format!("address {address:?} is not host:port"))?;
    if host.is_empty() || port.parse::<u16>().is_err() {
        return Err(format!("address {address:?} is not host:port"));
    }
    let (key, created) = node::trust::keyfile::load_or_create(data_dir)?;
    eprintln!("{} the key of {address} in {}", if created { "created" } else { "kept" }, data_dir.join(node::trust::keyfile::KEY_FILE).display());
    println!("[[bank]]\naddress = \"{address}\"\npublic_key = \"{}\"", key.public().to_hex());
    Ok(())
}

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        // Colours only for a person at a terminal, not in a log file.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    // A broken invariant means this bank's state cannot be trusted: stop rather than go on.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        default_hook(info);
        eprintln!("fatal: invariant broken, stopping the bank (state on disk is intact up to the last commit)");
        std::process::exit(70);
    }));
    let args = Args::parse();
    if let Some(cmd) = &args.command {
        let done = match cmd {
            Command::Init { data_dir, address } => init(data_dir, address),
            Command::TellerKey { out } => node::trust::keyfile::load_or_create_at(out).map(|(key, created)| {
                eprintln!("{} the teller key {}", if created { "created" } else { "kept" }, out.display());
                println!("{}", key.public().to_hex());
            }),
            Command::TlsCa { out_dir } => node::certs::make_ca(out_dir).map(|created| {
                let ca = out_dir.join(node::certs::CA_CERT);
                eprintln!("{} the consortium's CA {} (its key: {})", if created { "created" } else { "kept" }, ca.display(), out_dir.join(node::certs::CA_KEY).display());
                println!("{}", ca.display());
            }),
            Command::Admin { cmd } => node::admin::cli::run(cmd),
            Command::TlsCert { ca_dir, address, out_dir } => node::certs::make_cert(ca_dir, address, out_dir).map(|(cert, key)| {
                eprintln!("issued the certificate of {address}: {} (key {})", cert.display(), key.display());
                println!("tls_cert = \"{}\"\ntls_key = \"{}\"\ntls_ca = \"{}\"", cert.display(), key.display(), ca_dir.join(node::certs::CA_CERT).display());
            }),
        };
        if let Err(e) = done {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
        return;
    }
    let mut config = match &args.config {
        Some(path) => match std::fs::read_to_string(path).map_err(|e| e.to_string()).and_then(|t| Config::from_toml(&t)) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("error: config file {}: {e}", path.display());
                std::process::exit(2);
            }
        },
        None => Config::default(),
    };
    if let Some(l) = args.listen {
        config.listen = l;
    }
    if args.advertise.is_some() {
        config.advertise = args.advertise;
    }
    if args.manifest.is_some() {
        config.manifest = args.manifest;
    }
    if let Some(d) = args.data_dir {
        config.data_dir = d;
    }
    config.teller_keys.extend(args.teller_keys);
    config.require_approval |= args.require_approval;
    if args.tls_cert.is_some() {
        config.tls_cert = args.tls_cert;
    }
    if args.tls_key.is_some() {
        config.tls_key = args.tls_key;
    }
    if args.tls_ca.is_some() {
        config.tls_ca = args.tls_ca;
    }
    config.plain_http |= args.plain_http;
    if let Err(e) = config.check().and_then(|_| config.security().map(|_| ())) {
        eprintln!("error: {e}");
        std::process::exit(2);
    }
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    if let Err(e) = rt.block_on(node::server::run_production(config, shutdown_signal())) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down");
}
