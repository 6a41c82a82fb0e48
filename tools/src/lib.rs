//! Tooling around real `node` processes on loopback: a consortium of them (`cluster`, for the
//! end-to-end tests, the benchmark and the chaos test) and the load and chaos runs
//! (`bench`). None of it is in the server crate: a bank does not ship its test rig.

pub mod availability;
pub mod bench;
pub mod chaos_picture;
pub mod cluster;
pub mod proxy;
pub mod soak;
