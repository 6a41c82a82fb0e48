//! The token that circulates among the banks.

use super::order::ring_key;
use crate::package::{Package, PackageKey};
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use std::collections::BTreeMap;

/// A token generation. Newer epochs win; within a generation (two banks regenerating at once)
/// the creator's ring position breaks the tie, so every bank agrees which one is newer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Epoch {
    pub gen: u64,
    pub creator: String,
}

impl Ord for Epoch {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.gen, ring_key(&self.creator)).cmp(&(other.gen, ring_key(&other.creator)))
    }
}

impl PartialOrd for Epoch {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl std::fmt::Display for Epoch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{}", self.gen, self.creator)
    }
}

/// A package waiting in the token, with the bank that holds its record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Queued {
    pub package: Package,
    pub origin: String,
}

impl Queued {
    pub fn key(&self) -> PackageKey {
        self.package.key(&self.origin)
    }
}

/// Most packages a token carries: bounds the size of a pass (see `api::MAX_PEER_BODY_BYTES`).
/// An origin with more pending adds the rest at a later visit, oldest first.
pub const MAX_QUEUE: usize = 1024;

/// Ceiling of every counter that arrives from the network (generation, hop). Far above any
/// count a ring reaches (2^62 passes at a million a second is 146,000 years), far enough
/// below u64::MAX that adding to it never wraps. A token or block above it is refused and
/// never persisted: it used to overflow a counter, be saved, and stop the bank again after
/// every restart.
pub const MAX_COUNTER: u64 = 1 << 62;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Token {
    pub epoch: Epoch,
    /// Passes since the epoch began. Every bank sees it grow; a repeat or a step back means
    /// a second token of the same epoch exists.
    pub hop: u64,
    /// Visits per bank in the current cycle.
    pub visits: BTreeMap<String, u32>,
    /// Per bank, the hop at which it last passed this token on. A bank takes a token of its
    /// current epoch only if this matches its own last pass (see `Ring::last_passed`).
    #[serde(default)]
    pub passed_by: BTreeMap<String, u64>,
    /// The hop at which a bank last added or executed packages. Banks hold an idle token
    /// longer and longer, but only once the whole ring has been idle for a rotation: a bank
    /// cannot tell from its own visits alone that work went by elsewhere.
    #[serde(default)]
    pub busy_hop: u64,
    pub queue: Vec<Queued>,
}

impl Token {
    pub fn new(epoch: Epoch) -> Token {
        Token { epoch, hop: 0, visits: BTreeMap::new(), passed_by: BTreeMap::new(), busy_hop: 0, queue: Vec::new() }
    }
}
