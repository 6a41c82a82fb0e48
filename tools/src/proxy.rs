//! A small fault-injecting TCP proxy, one per bank in a proxied [`Cluster`]: it listens on
//! the bank's advertised address (the one in the manifest, which the other banks and the
//! clients call) and forwards bytes both ways to the bank's private port. Its [`Mode`] is
//! switched at run time and every connection obeys it chunk by chunk, so a fault also hits
//! the connections already open (the banks' pooled keep-alive connections).
//!
//! This kernel has no netem, so network faults are made here instead. What each mode does:
//!
//! * `Pass`: forwards everything.
//! * `Blackhole` (the bank is isolated from inbound traffic): connections are still
//!   accepted (as a kernel's backlog would), but nothing is read or forwarded either way while
//!   the mode lasts: a new connection is not even opened to the bank, and an open one stalls
//!   with its bytes left in the kernel's buffers. When the mode returns to `Pass` they flow
//!   again, like TCP retransmitting after a partition heals. The bank can still call out: its
//!   own calls go to the other banks' proxies.
//! * `LoseReplies`: what callers send reaches the bank; what the bank sends back is read and
//!   dropped. A connection that lost a reply stays dead (both directions discarded) until
//!   either side closes it: its byte stream is no longer whole, so it could never be used
//!   again, and the caller sees a timeout.
//! * `Slow { delay_ms, jitter_ms, loss_pct }`: each chunk (one read, up to 16 KiB, either
//!   direction) waits `delay_ms` plus a uniform `0..=jitter_ms` before it is forwarded, in
//!   order; and with probability `loss_pct`% a chunk is lost, which kills its connection as
//!   in `LoseReplies` (a lost segment that is never retransmitted: the caller times out).
//!   One HTTP exchange is usually one chunk each way, so about `2 × loss_pct`% of the calls
//!   time out.
//!
//! [`Cluster`]: crate::cluster::Cluster

use rand::Rng;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    Pass,
    Blackhole,
    LoseReplies,
    Slow { delay_ms: u64, jitter_ms: u64, loss_pct: u8 },
}

/// What a proxy did so far (for tests and reports).
#[derive(Default, Debug)]
pub struct Stats {
    pub connections: AtomicU64,
    /// Chunks forwarded, either direction.
    pub forwarded: AtomicU64,
    /// Chunks read and dropped (lost replies, lost chunks, and anything on a dead connection).
    pub dropped: AtomicU64,
}

pub struct Proxy {
    pub listen: SocketAddr,
    pub target: SocketAddr,
    mode: watch::Sender<Mode>,
    pub stats: Arc<Stats>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// Listens on `listen` (use port 0 for any) and forwards to `target`. Must be called inside
    /// a tokio runtime; the proxy and every connection it carries end when it is dropped.
    pub async fn start(listen: &str, target: &str) -> std::io::Result<Proxy> {
        let listener = TcpListener::bind(listen).await?;
        let listen = listener.local_addr()?;
        let target: SocketAddr = target.parse().map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("{target}: {e}")))?;
        let (mode, rx) = watch::channel(Mode::Pass);
        let stats = Arc::new(Stats::default());
        let st = stats.clone();
        let task = tokio::spawn(async move {
            // Owned by the accept loop: aborting the loop drops the set, which aborts every
            // connection's task.
            let mut conns = JoinSet::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        let Ok((inbound, _)) = accepted else { continue };
                        st.connections.fetch_add(1, Ordering::Relaxed);
                        conns.spawn(connection(inbound, target, rx.clone(), st.clone()));
                    }
                    Some(_) = conns.join_next(), if !conns.is_empty() => {}
                }
            }
        });
        Ok(Proxy { listen, target, mode, stats, task })
    }

    pub fn set(&self, m: Mode) {
        self.mode.send_replace(m);
    }

    pub fn mode(&self) -> Mode {
        *self.mode.borrow()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn blackholed(m: &Mode) -> bool {
    matches!(m, Mode::Blackhole)
}

async fn connection(inbound: TcpStream, target: SocketAddr, mut rx: watch::Receiver<Mode>, stats: Arc<Stats>) {
    // An isolated bank is not even connected to.
    if rx.wait_for(|m| !blackholed(m)).await.is_err() {
        return;
    }
    let Ok(outbound) = TcpStream::connect(target).await else { return };
    let _ = inbound.set_nodelay(true);
    let _ = outbound.set_nodelay(true);
    let (in_r, in_w) = inbound.into_split();
    let (out_r, out_w) = outbound.into_split();
    let dead = Arc::new(AtomicBool::new(false));
    let requests = pump(in_r, out_w, false, rx.clone(), dead.clone(), stats.clone());
    let replies = pump(out_r, in_w, true, rx, dead, stats);
    tokio::join!(requests, replies);
}

/// Copies one direction chunk by chunk, each chunk under the mode of the moment. `reply`:
/// this is the bank's direction (bank to caller).
async fn pump(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, reply: bool, mut rx: watch::Receiver<Mode>, dead: Arc<AtomicBool>, stats: Arc<Stats>) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        // Isolated: nothing is read (the bytes wait in the kernel), until the mode changes.
        if rx.wait_for(|m| !blackholed(m)).await.is_err() {
            return;
        }
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        // A chunk read just before an isolation waits for it to end, like the rest.
        let mode = match rx.wait_for(|m| !blackholed(m)).await {
            Ok(m) => *m,
            Err(_) => return,
        };
        if dead.load(Ordering::Relaxed) {
            stats.dropped.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        match mode {
            Mode::Pass | Mode::Blackhole => {}
            Mode::LoseReplies => {
                if reply {
                    dead.store(true, Ordering::Relaxed);
                    stats.dropped.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
            }
            Mode::Slow { delay_ms, jitter_ms, loss_pct } => {
                let (lost, wait) = {
                    let mut rng = rand::rng();
                    (rng.random_range(0..100u32) < loss_pct as u32, delay_ms + rng.random_range(0..=jitter_ms))
                };
                if lost {
                    dead.store(true, Ordering::Relaxed);
                    stats.dropped.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                tokio::time::sleep(Duration::from_millis(wait)).await;
            }
        }
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
        stats.forwarded.fetch_add(1, Ordering::Relaxed);
    }
    // The other side sees the end of this direction.
    let _ = to.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    /// An echo server on a free port: every chunk read is written back.
    async fn echo() -> (SocketAddr, tokio::task::JoinHandle<()>) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let h = tokio::spawn(async move {
            loop {
                let (mut s, _) = l.accept().await.unwrap();
                tokio::spawn(async move {
                    let mut b = [0u8; 1024];
                    loop {
                        match s.read(&mut b).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => {
                                if s.write_all(&b[..n]).await.is_err() {
                                    return;
                                }
                            }
                        }
                    }
                });
            }
        });
        (addr, h)
    }

    /// Sends `msg` and waits up to `wait` for it to come back whole.
    async fn round_trip(s: &mut TcpStream, msg: &[u8], wait: Duration) -> Option<Vec<u8>> {
        s.write_all(msg).await.ok()?;
        let mut got = Vec::new();
        let mut b = [0u8; 1024];
        let deadline = Instant::now() + wait;
        while got.len() < msg.len() {
            let left = deadline.checked_duration_since(Instant::now())?;
            match tokio::time::timeout(left, s.read(&mut b)).await {
                Ok(Ok(n)) if n > 0 => got.extend_from_slice(&b[..n]),
                _ => return None,
            }
        }
        Some(got)
    }

    async fn setup() -> (Proxy, tokio::task::JoinHandle<()>) {
        let (addr, h) = echo().await;
        (Proxy::start("127.0.0.1:0", &addr.to_string()).await.unwrap(), h)
    }

    const QUICK: Duration = Duration::from_millis(300);
    const LONG: Duration = Duration::from_secs(3);

    #[tokio::test]
    async fn pass_forwards_both_ways() {
        let (p, _e) = setup().await;
        let mut s = TcpStream::connect(p.listen).await.unwrap();
        for i in 0..5 {
            let m = format!("hello {i}");
            assert_eq!(round_trip(&mut s, m.as_bytes(), LONG).await.as_deref(), Some(m.as_bytes()));
        }
    }

    #[tokio::test]
    async fn blackhole_stalls_new_and_open_connections_until_it_ends() {
        let (p, _e) = setup().await;
        let mut open = TcpStream::connect(p.listen).await.unwrap();
        assert!(round_trip(&mut open, b"before", LONG).await.is_some());
        p.set(Mode::Blackhole);
        // An open connection stalls.
        assert_eq!(round_trip(&mut open, b"during", QUICK).await, None);
        // A new one is accepted but gets nothing.
        let mut fresh = TcpStream::connect(p.listen).await.unwrap();
        assert_eq!(round_trip(&mut fresh, b"new", QUICK).await, None);
        // Healed: what was sent during the isolation arrives (retransmitted), then new traffic.
        p.set(Mode::Pass);
        let mut b = [0u8; 64];
        let n = tokio::time::timeout(LONG, open.read(&mut b)).await.unwrap().unwrap();
        assert_eq!(&b[..n], b"during");
        assert_eq!(round_trip(&mut open, b"after", LONG).await.as_deref(), Some(&b"after"[..]));
        let n = tokio::time::timeout(LONG, fresh.read(&mut b)).await.unwrap().unwrap();
        assert_eq!(&b[..n], b"new");
    }

    #[tokio::test]
    async fn lose_replies_delivers_requests_and_drops_answers() {
        // A sink that records what it received and answers every chunk.
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let received = Arc::new(AtomicU64::new(0));
        let r = received.clone();
        tokio::spawn(async move {
            loop {
                let (mut s, _) = l.accept().await.unwrap();
                let r = r.clone();
                tokio::spawn(async move {
                    let mut b = [0u8; 1024];
                    while let Ok(n) = s.read(&mut b).await {
                        if n == 0 || s.write_all(b"ok").await.is_err() {
                            return;
                        }
                        r.fetch_add(n as u64, Ordering::Relaxed);
                    }
                });
            }
        });
        let p = Proxy::start("127.0.0.1:0", &addr.to_string()).await.unwrap();
        let mut open = TcpStream::connect(p.listen).await.unwrap();
        assert!(round_trip(&mut open, b"x", LONG).await.is_some());
        p.set(Mode::LoseReplies);
        assert_eq!(round_trip(&mut open, b"abcd", QUICK).await, None, "an open connection loses its reply");
        let mut fresh = TcpStream::connect(p.listen).await.unwrap();
        assert_eq!(round_trip(&mut fresh, b"efgh", QUICK).await, None, "a new one too");
        assert_eq!(received.load(Ordering::Relaxed), 1 + 4 + 4, "every request reached the server");
        assert!(p.stats.dropped.load(Ordering::Relaxed) >= 2);
        // Back to normal: a dead connection stays dead, a new one works.
        p.set(Mode::Pass);
        assert_eq!(round_trip(&mut open, b"z", QUICK).await, None);
        let mut again = TcpStream::connect(p.listen).await.unwrap();
        assert_eq!(round_trip(&mut again, b"y", LONG).await.as_deref(), Some(&b"ok"[..]));
    }

    #[tokio::test]
    async fn slow_delays_every_chunk_and_loses_some_connections() {
        let (p, _e) = setup().await;
        let mut s = TcpStream::connect(p.listen).await.unwrap();
        p.set(Mode::Slow { delay_ms: 100, jitter_ms: 50, loss_pct: 0 });
        let t = Instant::now();
        assert_eq!(round_trip(&mut s, b"slow", LONG).await.as_deref(), Some(&b"slow"[..]));
        let took = t.elapsed();
        assert!(took >= Duration::from_millis(200) && took < Duration::from_millis(1500), "two chunks of 100-150 ms: {took:?}");
        // Total loss: every connection dies on its first chunk.
        p.set(Mode::Slow { delay_ms: 0, jitter_ms: 0, loss_pct: 100 });
        assert_eq!(round_trip(&mut s, b"lost", QUICK).await, None);
        // Half the chunks lost: of 30 new connections (a round trip is two chunks) some live
        // and some die.
        p.set(Mode::Slow { delay_ms: 0, jitter_ms: 0, loss_pct: 50 });
        let mut ok = 0;
        for _ in 0..30 {
            let mut c = TcpStream::connect(p.listen).await.unwrap();
            ok += round_trip(&mut c, b"maybe", Duration::from_millis(100)).await.is_some() as usize;
        }
        assert!(ok > 0 && ok < 30, "{ok} of 30 survived");
    }

    #[tokio::test]
    async fn dropping_the_proxy_closes_its_connections() {
        let (p, _e) = setup().await;
        let mut s = TcpStream::connect(p.listen).await.unwrap();
        assert!(round_trip(&mut s, b"a", LONG).await.is_some());
        drop(p);
        let mut b = [0u8; 8];
        let r = tokio::time::timeout(LONG, s.read(&mut b)).await.expect("closed, not stalled");
        assert!(matches!(r, Ok(0) | Err(_)));
    }
}
