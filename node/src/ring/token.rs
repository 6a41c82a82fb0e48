//! The token that circulates among the banks.

use crate::net::ring_key;
use crate::package::Package;
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
pub struct Queued {
    pub package: Package,
    pub origin: String,
}

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
