//! The ring's order of bank addresses.

/// Orders bank addresses as the ring does: numerically by IP, then port; names (as in the
/// simulator) after IPs, by text. Never by digits glued together (the original's collision).
pub fn ring_key(addr: &str) -> (u8, u128, String, u16) {
    if let Ok(sa) = addr.parse::<std::net::SocketAddr>() {
        let ip = match sa.ip() {
            std::net::IpAddr::V4(v4) => u32::from(v4.to_ipv6_mapped().to_ipv4_mapped().unwrap_or(v4)) as u128,
            std::net::IpAddr::V6(v6) => u128::from(v6),
        };
        return (0, ip, String::new(), sa.port());
    }
    let (host, port) = addr.rsplit_once(':').unwrap_or((addr, "0"));
    (1, 0, host.to_string(), port.parse().unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::ring_key;

    #[test]
    fn ring_order_is_numeric() {
        let mut v = vec!["127.0.0.10:1", "127.0.0.2:9", "127.0.0.2:10", "bank2:80", "bank10:80"];
        v.sort_by_key(|a| ring_key(a));
        assert_eq!(v, vec!["127.0.0.2:9", "127.0.0.2:10", "127.0.0.10:1", "bank10:80", "bank2:80"]);
        // The original concatenated digits: 1.11.1.1 and 11.1.1.1 collided. Not here.
        assert_ne!(ring_key("1.11.1.1:5"), ring_key("11.1.1.1:5"));
    }
}
