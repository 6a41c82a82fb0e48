//! The token ring: who may execute packages, and when.
//!
//! - `token`: what circulates (epoch, hop counter, visit counts, queue of packages).
//! - `rules`: every decision about a token, as plain code: accept, drop as stale, flag as a
//!   duplicate, who is next, who executes, who recovers.
//! - `driver`: the async shell that holds, passes and regenerates the token.

pub mod driver;
pub mod rules;
pub mod token;

pub use rules::{Arrival, Ring};
pub use token::{Epoch, Queued, Token};
