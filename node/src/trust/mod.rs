//! Who may do what, and how a bank knows: every check here is plain code over bytes and keys.
//!
//! - `keys`, `manifest`, `decision` (in the core crate): a bank's Ed25519 key pair and hex
//!   forms; the consortium manifest (every bank's address and public key, the timings that
//!   must agree) and its hash, which banks compare on every call; the origin's signed
//!   decision of a package, the only thing a participant applies as an outcome.
//! - `keyfile`: a bank's private key in its data folder.
//! - `request`: the authentication every bank-to-bank request carries, its check (before the
//!   body is read), and the replay guard.
//! - `read`: a user's signed read statement, checked against this bank's registry.

pub use consortium_core::trust::{decision, hex, keys, manifest, put, unhex, user};

pub mod keyfile;
pub mod read;
pub mod request;
