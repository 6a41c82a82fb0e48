//! Packages: atomic groups of operations across banks, executed exactly once by two-phase
//! commit with presumed abort.
//!
//! - `spec`: what a package is, its validation, and how it splits into legs per bank.
//! - `record`: the origin's durable record, the single place a package is decided (CAS).
//! - `leg`: a participant's prepared legs and how they end.
//! - `intake`: accepting packages at the origin (group commit) and its pending outbox.
//! - `executor`: the async shell that runs prepare / decide / finish over the network.
//! - `resolver`: the async shell that settles legs whose outcome never arrived.

pub mod executor;
pub mod intake;
pub mod leg;
pub mod record;
pub mod resolver;
pub mod spec;

pub use record::{OpResult, Outcome, Record, Status};
pub use spec::{AccountRef, Leg, OpKind, Operation, Package, PackageDigest, PackageKey, Side};
