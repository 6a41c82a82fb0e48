//! What banks say to each other about the ring (`/peer/token`, `/peer/ring/...`). The wire
//! shapes live here, beside the rules that read them, so the node and the machine share one
//! definition.

use super::token::{Epoch, Token};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenPass {
    pub from: String,
    pub token: Token,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PassAnswer {
    Accepted,
    Repeat,
    Stale,
    Duplicate,
}

/// A bank's answer to "where is the token?". Only progress vouches for a token: a holder
/// says how long it has held it, so a bank that keeps a token it cannot pass (a stalled
/// disk, cut outbound links) stops vouching for it once it held it too long.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Probe {
    pub holding: bool,
    pub newest_gen: u64,
    /// Milliseconds since this bank last accepted or created a token; null if never in this
    /// run. Holding the token alone (no successor answers) does not count as seeing it.
    pub seen_ms_ago: Option<u64>,
    /// The newest epoch this bank knows, and the last hop of it that it accepted.
    #[serde(default)]
    pub epoch: Option<Epoch>,
    #[serde(default)]
    pub hop: u64,
    /// While holding: milliseconds since this hold began (accepted or created).
    #[serde(default)]
    pub held_ms: Option<u64>,
    /// This bank is running a recovery (bounded by its deadline): a token is on its way.
    #[serde(default)]
    pub recovering: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alert {
    pub from: String,
    pub reason: String,
    /// The newest generation the alerting bank knew of.
    pub gen: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Block {
    pub from: String,
    pub gen: u64,
}
