//! A bank of the consortium. Protocol rules are plain synchronous code (`domain`, `ledger`,
//! `ring::rules`, `package::{spec, record, leg}`); async code only moves messages, time and
//! bytes (`ring::driver`, `package::{executor, resolver}`, `api`, `net`, `server`).

pub use consortium_core::{domain, error, ledger};

pub mod api;
pub mod bench;
pub mod client;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod events;
pub mod limits;
pub mod net;
pub mod node;
pub mod package;
pub mod peers;
pub mod planted;
pub mod ring;
pub mod server;
pub mod store;
pub mod trust;
pub mod writer;
