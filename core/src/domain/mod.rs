//! The bank's nouns: people (by CPF), accounts, money. Plain data and rules, no I/O.

pub mod account;
pub mod cpf;
pub mod journal;
pub mod money;

pub use account::{Account, AccountKind, KeyRotation, User};
pub use cpf::Cpf;
pub use money::Cents;
