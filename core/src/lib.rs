//! The consortium's protocol core, as plain code with unit tests: what a CPF, an amount, a
//! user and an account are (`domain`); how balances move (`ledger`); what a package is and
//! how its identity, digest, legs, record and participant legs behave (`package`); and the
//! token's rules (`ring`); how long to wait for another bank (`rtt`). Nothing here does I/O or waits: this crate cannot see tokio, axum,
//! hyper or redb, so the compiler, not a convention, keeps the rules pure. The node feeds
//! these functions what happened and carries out what they say.

pub mod domain;
pub mod error;
pub mod events;
pub mod ledger;
pub mod package;
pub mod ring;
pub mod rtt;
pub mod trust;
pub mod wire;
