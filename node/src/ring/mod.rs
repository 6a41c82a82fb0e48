//! The token ring: who may execute packages, and when.
//!
//! - `token`, `rules`: what circulates and every decision about it, as plain code in the core
//!   crate (`consortium_core::ring`).
//! - `handle`: how the rest of the bank talks to the ring's owner task.
//! - `driver`: the owner task, the async shell that holds, passes and regenerates the token.

pub use consortium_core::ring::*;

pub mod driver;
pub mod handle;

pub use handle::RingHandle;
