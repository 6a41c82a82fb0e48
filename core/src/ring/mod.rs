//! The token's rules as plain code: `token` (what circulates), `rules` (every decision about a
//! token), `order` (the ring order of bank addresses). The node's `ring::driver` is the async
//! shell that holds, passes and regenerates the token.

pub mod order;
pub mod rules;
pub mod token;

pub mod machine;
pub mod messages;

pub use machine::{RingMachine, RingView};
pub use messages::{Alert, Block, PassAnswer, Probe, TokenPass};
pub use rules::{Arrival, Ring};
pub use token::{Epoch, Queued, Token};
