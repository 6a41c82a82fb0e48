//! Shared by the end-to-end tests: the loopback cluster of real `node` processes.
#![allow(dead_code)]

#[allow(unused_imports)]
pub use tools::cluster::{cpf, Cluster, TEST_TIMING};

/// This build's `node` binary, `n` banks, short timings.
pub async fn start(n: usize) -> Cluster {
    Cluster::start_with(n, std::path::PathBuf::from(env!("CARGO_BIN_EXE_node")), TEST_TIMING).await
}
