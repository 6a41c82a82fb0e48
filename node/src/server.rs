//! Starting a bank: open the store, build the node, serve HTTP, start the background tasks.
//! Production and the simulator both come through here; they differ only in the `Env` and
//! the listener they hand in.

use crate::api;
use crate::config::{ms, Config};
use crate::error::Error;
use crate::node::{Env, Identity, Node};
use crate::trust::manifest::Manifest;
use crate::store::Store;
use std::future::Future;
use std::sync::Arc;

/// Builds the node and starts its background tasks (writer, ring driver, resolver, compactor,
/// ping loops).
/// The caller serves `api::router(node)` on its listener.
pub fn start(config: &Config, identity: Identity, store: Store, env: Env) -> Result<Arc<Node>, Error> {
    config.check().map_err(|e| Error::bad_request("bad_config", e))?;
    let node = Node::new(config, identity, store, env)?;
    node.ctx.emit("started", format!("members {:?}", node.ctx.members()));
    node.peers.start_pinging();
    tokio::spawn(crate::package::writer::run(node.writer.clone(), node.committer()));
    tokio::spawn(crate::ring::driver::run(node.driver()));
    tokio::spawn(crate::package::resolver::run(node.executor.clone()));
    if node.ctx.is_reconciling() {
        tokio::spawn(crate::admin::run::run(node.ctx.clone(), node.storage.clone(), node.peers.clone(), node.intake.clone()));
    }
    if node.ctx.timing.compact_every_ms > 0 {
        tokio::spawn(crate::package::compactor::run(node.executor.clone()));
    }
    Ok(node)
}

/// Serves the API on any listener until `shutdown` resolves: accepts connections within the
/// limits (in all, and per address), gives each its remote address (refusals are logged with
/// it) and a header-read timeout, and at shutdown lets open requests finish.
pub async fn serve<L>(listener: L, node: Arc<Node>, shutdown: impl Future<Output = ()> + Send + 'static) -> std::io::Result<()>
where
    L: axum::serve::Listener<Addr = std::net::SocketAddr>,
{
    serve_with(listener, node, shutdown, None).await
}

/// `serve` over TLS (production only): each admitted connection's handshake runs in its own
/// task, bounded by the header-read timeout, so a slow or silent client holds one of its
/// address's connection slots for that long at most and never blocks the accept loop.
pub async fn serve_tls<L>(listener: L, node: Arc<Node>, shutdown: impl Future<Output = ()> + Send + 'static, tls: Arc<rustls::ServerConfig>) -> std::io::Result<()>
where
    L: axum::serve::Listener<Addr = std::net::SocketAddr>,
{
    serve_with(listener, node, shutdown, Some(tokio_rustls::TlsAcceptor::from(tls))).await
}

async fn serve_with<L>(mut listener: L, node: Arc<Node>, shutdown: impl Future<Output = ()> + Send + 'static, tls: Option<tokio_rustls::TlsAcceptor>) -> std::io::Result<()>
where
    L: axum::serve::Listener<Addr = std::net::SocketAddr>,
{
    use hyper_util::rt::{TokioIo, TokioTimer};
    let app = api::router(node.clone());
    let limits = node.limits.clone();
    let cap = limits.connection_cap(crate::limits::file_limit());
    let open = Arc::new(std::sync::Mutex::new(crate::limits::Connections::new(cap, limits.max_connections_per_ip)));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(ms(limits.header_read_timeout_ms)).keep_alive(true);
    tokio::pin!(shutdown);
    loop {
        // `biased`: the simulator needs every select! on its path to be deterministic.
        let (io, remote) = tokio::select! {
            biased;
            _ = &mut shutdown => break,
            a = listener.accept() => a,
        };
        if let Err(why) = open.lock().unwrap().admit(remote.ip()) {
            node.ctx.count_refusal("connection_limit");
            tracing::debug!(%remote, "connection closed at once: {why}");
            drop(io);
            continue;
        }
        let app = app.clone();
        let svc = hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
            req.extensions_mut().insert(axum::extract::ConnectInfo(api::Remote(remote)));
            let mut app = app.clone();
            async move { tower::Service::call(&mut app, req.map(axum::body::Body::new)).await }
        });
        let open = open.clone();
        let Some(acceptor) = &tls else {
            let conn = graceful.watch(http.serve_connection(TokioIo::new(io), svc));
            tokio::spawn(async move {
                let _ = conn.await;
                open.lock().unwrap().release(remote.ip());
            });
            continue;
        };
        let (handshake, http, watcher, node) = (acceptor.accept(io), http.clone(), graceful.watcher(), node.clone());
        let patience = ms(limits.header_read_timeout_ms);
        tokio::spawn(async move {
            match tokio::time::timeout(patience, handshake).await {
                Ok(Ok(stream)) => {
                    let _ = watcher.watch(http.serve_connection(TokioIo::new(stream), svc)).await;
                }
                Ok(Err(e)) => {
                    node.ctx.count_refusal("tls_handshake");
                    tracing::debug!(%remote, "TLS handshake failed: {e}");
                }
                Err(_) => {
                    node.ctx.count_refusal("tls_handshake_timeout");
                    tracing::debug!(%remote, "TLS handshake not done in {patience:?}: closed");
                }
            }
            open.lock().unwrap().release(remote.ip());
        });
    }
    drop(listener);
    // Requests in progress may finish (a client waiting for its package gets its answer).
    let _ = tokio::time::timeout(ms(node.ctx.timing.package_wait_ms + 1_000), graceful.shutdown()).await;
    Ok(())
}

/// Reads the manifest named by the configuration, and this bank's key from its data folder
/// (created on first start). Returns the identity and whether the key is new.
pub fn load_identity(config: &Config) -> Result<(Identity, bool), String> {
    let path = config.manifest.as_ref().ok_or("no manifest: give --manifest FILE (every bank's address and public key; `node init` prints this bank's entry)")?;
    let text = std::fs::read_to_string(path).map_err(|e| format!("manifest {}: {e}", path.display()))?;
    let manifest = Manifest::from_toml(&text).map_err(|e| format!("manifest {}: {e}", path.display()))?;
    let (key, created) = crate::trust::keyfile::load_or_create(&config.data_dir)?;
    Ok((Identity { key, manifest: Arc::new(manifest) }, created))
}

/// Production: the node on a real TCP port with its data in `config.data_dir`, over TLS
/// (`config.security()`: or plain HTTP if explicitly asked).
pub async fn run_production(config: Config, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<(), String> {
    config.check()?;
    // TLS (or the explicit development option) before anything is created or opened.
    let tls = match config.security()? {
        crate::config::Security::PlainHttp => None,
        crate::config::Security::Tls { cert, key, ca } => {
            let server = consortium_net::tls::server_config(&cert, &key)?;
            let client = consortium_net::tls::client_config(&ca).map_err(|e| format!("tls_ca: {e}"))?;
            Some((Arc::new(server), client))
        }
    };
    let (identity, created) = load_identity(&config)?;
    if created {
        tracing::warn!(public_key = %identity.key.public().to_hex(), "created this bank's key in {}: add its public key to the manifest", config.data_dir.display());
    }
    let dir = config.data_dir.clone();
    let store = tokio::task::spawn_blocking(move || Store::open_dir(&dir))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.message)?;
    let listener = tokio::net::TcpListener::bind(&config.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
    let env = Env {
        disk_stall: None,
        transport: match &tls {
            Some((_, client)) => Arc::new(consortium_net::tls::https_transport(client.clone())),
            None => Arc::new(crate::net::tcp_transport()),
        },
        clock: Arc::new(crate::clock::SystemClock),
        events: Arc::new(crate::events::LogEvents),
        rng_seed: rand::random(),
        inline_storage: false,
        planted: Default::default(),
    };
    let node = start(&config, identity, store, env).map_err(|e| e.message)?;
    let scheme = if tls.is_some() { "https" } else { "http (no TLS: development only)" };
    tracing::info!(listen = %config.listen, bank = %node.ctx.me, data = %config.data_dir.display(), manifest = %&node.ctx.manifest.hash_hex()[..12], scheme, "bank is up");
    match tls {
        Some((server, _)) => serve_tls(listener, node, shutdown, server).await,
        None => serve(listener, node, shutdown).await,
    }
    .map_err(|e| e.to_string())
}
