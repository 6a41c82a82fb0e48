//! A bank under a connection flood, on a real process: with its file limit at 1,024 and 2,000
//! connections from 127.0.0.2 that send part of a request and stall, it closes what is past
//! its limits at once (and counts it), answers a client on 127.0.0.3 at once (not only once
//! the stalled ones time out), closes the stalled connections after its header-read timeout,
//! and stays up.

mod common;
use common::{Cluster, TEST_TIMING};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// Raises this test process's own soft limit on open files (it holds the 2,000 connections).
fn raise_own_file_limit(want: u64) {
    let mut l = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut l) };
    assert!(l.rlim_max >= want, "this test needs {want} open files; the hard limit is {}", l.rlim_max);
    l.rlim_cur = l.rlim_cur.max(want);
    unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &l) };
}

fn connect_from(local: [u8; 4], to: SocketAddr) -> std::io::Result<TcpStream> {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    s.bind(&SocketAddr::from((local, 0)).into())?;
    s.connect_timeout(&to.into(), Duration::from_secs(2))?;
    Ok(s.into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_connections_cannot_lock_out_other_clients() {
    raise_own_file_limit(4_096);
    let dir = tempfile::tempdir().unwrap();
    // The node runs with its file limit at 1,024, as many systems start it.
    let wrapper = dir.path().join("node-1024");
    std::fs::write(&wrapper, format!("#!/bin/sh\nulimit -n 1024\nexec {} \"$@\"\n", env!("CARGO_BIN_EXE_node"))).unwrap();
    std::os::unix::fs::PermissionsExt::set_mode(&mut std::fs::metadata(&wrapper).unwrap().permissions(), 0o755);
    std::fs::set_permissions(&wrapper, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let timing = format!("{TEST_TIMING}\n[limits]\nheader_read_timeout_ms = 8000\n");
    let mut c = Cluster::start_with(1, wrapper, &timing).await;
    let addr: SocketAddr = c.addrs[0].parse().unwrap();

    let flood = tokio::task::spawn_blocking(move || {
        let mut held = Vec::new();
        for _ in 0..2_000 {
            // Connections past the bank's limits are closed by it at once; the flood goes on.
            if let Ok(mut s) = connect_from([127, 0, 0, 2], addr) {
                let _ = s.write_all(b"GET /status HTTP/1.1\r\nHost: flood\r\n");
                held.push(s);
            }
        }
        held
    });
    let mut held = flood.await.unwrap();
    assert!(held.len() >= 1_900, "the flood opened its connections: {}", held.len());

    // A client on another address is served at once.
    let started = Instant::now();
    let answer = tokio::task::spawn_blocking(move || {
        let mut s = connect_from([127, 0, 0, 3], addr).expect("127.0.0.3 connects");
        s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        s.write_all(b"GET /status HTTP/1.1\r\nHost: client\r\nConnection: close\r\n\r\n").unwrap();
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out
    })
    .await
    .unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "127.0.0.3 is answered during the flood: {answer:?}");
    // At once, not after the stalled connections time out (8 s) and free their files.
    assert!(started.elapsed() < Duration::from_millis(1500), "answered after {:?}", started.elapsed());

    // The stalled connections are closed by the bank within its header-read timeout.
    let closed = tokio::task::spawn_blocking(move || {
        let mut closed = 0;
        for s in held.iter_mut().take(200) {
            s.set_read_timeout(Some(Duration::from_secs(12))).unwrap();
            let mut buf = [0u8; 512];
            // EOF, a reset, or the bank's 408 then EOF: anything but a timeout.
            match s.read(&mut buf) {
                Ok(_) => closed += 1,
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => closed += 1,
                Err(_) => {}
            }
        }
        closed
    })
    .await
    .unwrap();
    assert_eq!(closed, 200, "every stalled connection checked was closed by the bank");
    assert!(c.exited(0).is_none(), "the bank is up; log:\n{}", c.log(0));
    let (code, s) = c.get(0, "/status").await;
    assert_eq!(code, 200);
    assert!(s["counters"]["refused"]["connection_limit"].as_u64().unwrap_or(0) > 0, "connections past the limits are counted: {s}");
}

/// A client that sends faster than its address's rate gets 429 with a clear reason, and the
/// bank counts it; the next second it is served again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_past_its_rate_is_told_to_slow_down() {
    let timing = format!("{TEST_TIMING}\n[limits]\nrequests_per_ip_per_s = 20\n");
    let c = Cluster::start_with(1, std::path::PathBuf::from(env!("CARGO_BIN_EXE_node")), &timing).await;
    tokio::time::sleep(Duration::from_secs(2)).await; // the bucket refills after start-up polls
    let mut codes = std::collections::BTreeMap::<u16, usize>::new();
    let mut reason = serde_json::Value::Null;
    for _ in 0..100 {
        let (code, v) = c.get(0, "/status").await;
        if code == 429 {
            reason = v;
        }
        *codes.entry(code).or_default() += 1;
    }
    assert!(codes.get(&200).copied().unwrap_or(0) >= 40, "a burst of twice the rate goes through: {codes:?}");
    assert!(codes.get(&429).copied().unwrap_or(0) >= 40, "the rest is refused: {codes:?}");
    assert_eq!(reason["error"]["code"], "rate_limited", "{reason}");
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let (code, s) = c.get(0, "/status").await;
    assert_eq!(code, 200, "served again a second later");
    assert!(s["counters"]["refused"]["rate_limited"].as_u64().unwrap() >= 40, "{s}");
}
