//! What one client may take from a bank: connections (in all, and from one address) and
//! requests per second (from one address). Plain code on tokio's clock, so the simulator
//! runs it as production does; the accept loop (`server::serve`) and the client API apply it.
//! Calls between banks are signed and come from members: they are not rate-limited.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::IpAddr;
use tokio::time::Instant;

/// The limits, as configured (TOML keys of the node's configuration).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Open connections at once; 0: derived from the process's file limit (what is left
    /// after the files and outbound connections a bank needs), so that a flood of
    /// connections can never take the last file descriptor.
    pub max_connections: usize,
    /// Open connections from one address at once: one client cannot take them all.
    pub max_connections_per_ip: usize,
    /// A client that has not sent a request's headers in this long is disconnected (a slow
    /// client cannot hold a connection open by sending a byte now and then).
    pub header_read_timeout_ms: u64,
    /// Client requests per second from one address (the bucket holds twice as many).
    pub requests_per_ip_per_s: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_connections: 0, max_connections_per_ip: 256, header_read_timeout_ms: 5_000, requests_per_ip_per_s: 2_000 }
    }
}

/// File descriptors a bank keeps for itself (database, listener, logs, pooled connections to
/// the other banks) before counting what is left for clients.
pub const RESERVED_FILES: usize = 160;

impl Limits {
    /// The connection cap in force: the configured one, or what the file limit leaves.
    pub fn connection_cap(&self, file_limit: Option<u64>) -> usize {
        if self.max_connections > 0 {
            return self.max_connections;
        }
        match file_limit {
            Some(n) => (n as usize).saturating_sub(RESERVED_FILES).max(16),
            None => 4_096,
        }
    }
}

/// The process's soft limit on open files, if it has one.
pub fn file_limit() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// Open connections, in all and per address.
#[derive(Debug)]
pub struct Connections {
    total: usize,
    per_ip: BTreeMap<IpAddr, usize>,
    max_total: usize,
    max_per_ip: usize,
}

impl Connections {
    pub fn new(max_total: usize, max_per_ip: usize) -> Connections {
        Connections { total: 0, per_ip: BTreeMap::new(), max_total, max_per_ip }
    }

    /// Counts a new connection from `ip`, or says why it must be closed at once.
    pub fn admit(&mut self, ip: IpAddr) -> Result<(), &'static str> {
        if self.total >= self.max_total {
            return Err("connection limit reached");
        }
        let n = self.per_ip.entry(ip).or_default();
        if *n >= self.max_per_ip {
            return Err("connection limit of this address reached");
        }
        *n += 1;
        self.total += 1;
        Ok(())
    }

    pub fn release(&mut self, ip: IpAddr) {
        let n = self.per_ip.get_mut(&ip).expect("a released connection was admitted");
        *n -= 1;
        if *n == 0 {
            self.per_ip.remove(&ip);
        }
        self.total = self.total.checked_sub(1).expect("released more connections than admitted");
    }

    pub fn open(&self) -> usize {
        self.total
    }
}

/// A token bucket per address: `rate` requests a second, bursts of twice that.
#[derive(Debug)]
pub struct RateLimiter {
    rate: f64,
    buckets: BTreeMap<IpAddr, (f64, Instant)>,
}

/// Addresses remembered at most; past it, addresses whose bucket is full again are forgotten.
const MAX_BUCKETS: usize = 100_000;

impl RateLimiter {
    pub fn new(per_s: u32) -> RateLimiter {
        RateLimiter { rate: f64::from(per_s.max(1)), buckets: BTreeMap::new() }
    }

    /// Whether one more request from `ip` may go through now.
    pub fn allow(&mut self, ip: IpAddr, now: Instant) -> bool {
        let burst = 2.0 * self.rate;
        if self.buckets.len() >= MAX_BUCKETS {
            let rate = self.rate;
            self.buckets.retain(|_, (tokens, at)| *tokens + now.saturating_duration_since(*at).as_secs_f64() * rate < burst);
        }
        let (tokens, at) = self.buckets.entry(ip).or_insert((burst, now));
        *tokens = (*tokens + now.saturating_duration_since(*at).as_secs_f64() * self.rate).min(burst);
        *at = now;
        if *tokens < 1.0 {
            return false;
        }
        *tokens -= 1.0;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, last])
    }

    #[test]
    fn one_address_cannot_take_every_connection() {
        let mut c = Connections::new(3, 2);
        assert!(c.admit(ip(2)).is_ok() && c.admit(ip(2)).is_ok());
        assert_eq!(c.admit(ip(2)), Err("connection limit of this address reached"));
        assert!(c.admit(ip(3)).is_ok(), "another address still gets in");
        assert_eq!(c.admit(ip(4)), Err("connection limit reached"));
        c.release(ip(2));
        assert!(c.admit(ip(4)).is_ok());
        assert_eq!(c.open(), 3);
    }

    #[test]
    fn the_cap_follows_the_file_limit() {
        let l = Limits::default();
        assert_eq!(l.connection_cap(Some(1024)), 1024 - RESERVED_FILES);
        assert_eq!(l.connection_cap(Some(10)), 16);
        assert_eq!(Limits { max_connections: 7, ..l }.connection_cap(Some(1024)), 7);
    }

    #[test]
    fn the_rate_refills_with_time_and_is_per_address() {
        let mut r = RateLimiter::new(10);
        let t0 = Instant::now();
        assert_eq!((0..25).filter(|_| r.allow(ip(2), t0)).count(), 20, "a burst of twice the rate");
        assert!(r.allow(ip(3), t0), "another address has its own bucket");
        assert!(!r.allow(ip(2), t0 + Duration::from_millis(50)));
        assert!(r.allow(ip(2), t0 + Duration::from_millis(150)), "a tenth of a second refills one");
    }
}
