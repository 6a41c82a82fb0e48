//! Which other banks answer. A bank that fails a call is marked offline; a background loop
//! pings it with growing pauses until it answers, and no other message goes to it meanwhile.

use std::collections::BTreeMap;
use std::sync::Mutex;

#[derive(Debug, Default)]
pub struct Peers {
    inner: Mutex<BTreeMap<String, PeerState>>,
}

#[derive(Debug, Clone, Default)]
struct PeerState {
    online: bool,
    /// A ping loop is running for this peer.
    pinging: bool,
}

impl Peers {
    /// Every other bank starts offline: it must answer a ping first.
    pub fn new(others: impl IntoIterator<Item = String>) -> Peers {
        Peers { inner: Mutex::new(others.into_iter().map(|p| (p, PeerState::default())).collect()) }
    }

    pub fn is_online(&self, peer: &str) -> bool {
        self.inner.lock().unwrap().get(peer).is_some_and(|s| s.online)
    }

    pub fn all(&self) -> Vec<(String, bool)> {
        self.inner.lock().unwrap().iter().map(|(p, s)| (p.clone(), s.online)).collect()
    }

    /// Marks a peer offline. Returns true if the caller must start its ping loop.
    pub fn mark_offline(&self, peer: &str) -> bool {
        let mut m = self.inner.lock().unwrap();
        let Some(s) = m.get_mut(peer) else { return false };
        s.online = false;
        !std::mem::replace(&mut s.pinging, true)
    }

    /// The ping loop got an answer. Returns true if the peer was offline before.
    pub fn mark_online(&self, peer: &str) -> bool {
        let mut m = self.inner.lock().unwrap();
        let Some(s) = m.get_mut(peer) else { return false };
        s.pinging = false;
        !std::mem::replace(&mut s.online, true)
    }

    /// Claims the ping loop of every peer that has none (at start-up).
    pub fn claim_unpinged(&self) -> Vec<String> {
        let mut m = self.inner.lock().unwrap();
        m.iter_mut().filter(|(_, s)| !s.online && !s.pinging).map(|(p, s)| {
            s.pinging = true;
            p.clone()
        }).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_ping_loop_per_offline_peer() {
        let p = Peers::new(["a".to_string(), "b".to_string()]);
        assert!(!p.is_online("a"));
        assert_eq!(p.claim_unpinged(), vec!["a", "b"]);
        assert!(p.claim_unpinged().is_empty());
        assert!(p.mark_online("a"));
        assert!(p.is_online("a"));
        assert!(p.mark_offline("a"), "first failure starts a loop");
        assert!(!p.mark_offline("a"), "a second failure does not start another");
        assert!(!p.mark_offline("zzz"), "unknown peers are ignored");
    }
}
