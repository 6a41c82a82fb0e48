//! `node`: one bank of the consortium, as a server.

use clap::Parser;
use node::config::Config;
use std::path::PathBuf;

/// A bank of the consortium: serves the client API and takes part in the token ring.
///
/// Example: node --listen 127.0.0.1:7001 --peers 127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003 --data-dir data/7001
///
/// Logs go to stderr; set RUST_LOG (e.g. RUST_LOG=node=debug) to change what is shown.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Address to listen on (host:port).
    #[arg(long)]
    listen: Option<String>,
    /// Address the other banks know this one by, if not --listen.
    #[arg(long)]
    advertise: Option<String>,
    /// Every bank of the consortium, comma-separated host:port; may include this one.
    #[arg(long, value_delimiter = ',')]
    peers: Vec<String>,
    /// Where this bank keeps its data (created if missing). Restart with the same folder to
    /// keep every acknowledged write.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// TOML file with the same keys (listen, advertise, peers, data_dir, peer_secret, and the
    /// timing keys: peer_timeout_ms, package_wait_ms, idle_hold_ms, token_loss_ms,
    /// startup_check_ms, block_ms, resolve_after_ms, presume_abort_ms, ping_backoff_max_ms).
    /// Flags given on the command line win over the file.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Shared key that calls between banks must carry (or env CONSORTIUM_KEY).
    #[arg(long, env = "CONSORTIUM_KEY", hide_env_values = true)]
    peer_secret: Option<String>,
}

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    // A broken invariant means this bank's state cannot be trusted: stop rather than go on.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        default_hook(info);
        eprintln!("fatal: invariant broken, stopping the bank (state on disk is intact up to the last commit)");
        std::process::exit(70);
    }));
    let args = Args::parse();
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
    if !args.peers.is_empty() {
        config.peers = args.peers.into_iter().map(|p| p.trim().to_string()).filter(|p| !p.is_empty()).collect();
    }
    if let Some(d) = args.data_dir {
        config.data_dir = d;
    }
    if args.peer_secret.is_some() {
        config.peer_secret = args.peer_secret;
    }
    if let Err(e) = config.check() {
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
