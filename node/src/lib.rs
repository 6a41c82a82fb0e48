//! A bank of the consortium. Protocol rules are plain synchronous code (`domain`, `ledger`,
//! `ring::rules`, `package::{spec, record, leg}`); async code only moves messages, time and
//! bytes (`ring::driver`, `package::{writer, executor, resolver}`, `peers`, `api`, `net`,
//! `server`). Each async part holds the handles it uses (`context::Context`, `store::Storage`,
//! `peers::Peers`, `ring::RingHandle`, `package::{writer::Writer, intake::Intake}`, ...);
//! `node.rs` builds them and is imported only by the HTTP layer (`api`, `server`).

pub use consortium_core::{domain, error, ledger, wire};
pub use consortium_net as net;

pub mod admin;
pub mod api;
pub mod certs;
pub mod clock;
pub mod config;
pub mod context;
pub mod events;
pub mod limits;
pub mod metrics;
pub mod node;
pub mod package;
pub mod peers;
pub mod planted;
pub mod ring;
pub mod rotations;
pub mod server;
pub mod store;
pub mod trust;
