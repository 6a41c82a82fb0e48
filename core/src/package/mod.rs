//! Packages as plain data: `spec` (shape, validation, identity, digest, legs per bank),
//! `record` (the origin's compare-and-set decision), `leg` (a participant's legs and how they
//! end). The node's `package` module adds the async shells (executor, resolver, intake).

pub mod authority;
pub mod compact;
pub mod leg;
pub mod record;
pub mod round;
pub mod spec;

pub use record::{OpResult, Outcome, Record, Status};
pub use spec::{AccountRef, Leg, OpKind, Operation, Package, PackageDigest, PackageKey, PackageSignature, Side};
