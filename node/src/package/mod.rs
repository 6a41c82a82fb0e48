//! Packages: atomic groups of operations across banks, executed exactly once by two-phase
//! commit with presumed abort.
//!
//! - `spec`, `record`, `leg`: the plain rules, in the core crate (`consortium_core::package`).
//! - `intake`: the origin's pending outbox and the clients waiting for outcomes.
//! - `writer`: group commit, the one task that writes packages' state to the store.
//! - `executor`: the async shell that runs prepare / decide / finish over the network.
//! - `resolver`: the async shell that settles legs whose outcome never arrived.

pub use consortium_core::package::*;

pub mod compactor;
pub mod executor;
pub mod intake;
pub mod resolver;
pub mod writer;
