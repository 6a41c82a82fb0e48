//! The async face of the store: the handle the rest of the bank runs storage calls through
//! (`db`), and the bookkeeping that notices a call stuck on the disk. Cheap to clone.

use super::Store;
use crate::config::ms;
use crate::error::Error;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

#[derive(Clone)]
pub struct Storage {
    store: Store,
    /// Call the store inline (simulation: no threads) or on tokio's blocking pool.
    inline: bool,
    /// The simulator's stalled disk: while set, every storage call waits. None in production.
    disk_stall: Option<Arc<AtomicBool>>,
    /// How long a call may take before the bank is not ready (the peer timeout: a caller
    /// would have given up by then).
    bound: Duration,
    /// Storage calls in progress, by when they started: one that outlasts its bound makes
    /// the bank not ready (see `stuck`).
    calls: Arc<Mutex<(u64, BTreeMap<u64, Instant>)>>,
}

impl Storage {
    pub fn new(store: Store, inline: bool, disk_stall: Option<Arc<AtomicBool>>, bound: Duration) -> Storage {
        Storage { store, inline, disk_stall, bound, calls: Arc::new(Mutex::new((0, BTreeMap::new()))) }
    }

    /// The store itself, for reads that bypass the bookkeeping (the simulator's checks).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Runs a store operation: inline in simulation, on a blocking thread in production.
    pub async fn db<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Store) -> Result<T, Error> + Send + 'static,
    ) -> Result<T, Error> {
        let _call = StorageCall::start(self);
        if let Some(stall) = &self.disk_stall {
            while stall.load(Ordering::Relaxed) {
                tokio::time::sleep(ms(1)).await;
            }
        }
        if self.inline {
            return f(&self.store);
        }
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || f(&store)).await.map_err(|e| Error::internal(format!("storage task: {e}")))?
    }

    /// How long the oldest storage call in progress has taken, if longer than its bound. Such
    /// a bank is not ready: it answers other banks 503 until the call completes, and they
    /// treat it as down. It never answers "failed" for the call itself: the write may still
    /// land.
    pub fn stuck(&self) -> Option<Duration> {
        let calls = self.calls.lock().unwrap();
        let oldest = calls.1.values().min()?;
        let age = Instant::now().saturating_duration_since(*oldest);
        (age > self.bound).then_some(age)
    }
}

/// A storage call in progress, registered until it ends (or its future is dropped).
struct StorageCall<'a> {
    storage: &'a Storage,
    id: u64,
}

impl<'a> StorageCall<'a> {
    fn start(storage: &'a Storage) -> StorageCall<'a> {
        let mut calls = storage.calls.lock().unwrap();
        let id = calls.0;
        calls.0 += 1;
        calls.1.insert(id, Instant::now());
        StorageCall { storage, id }
    }
}

impl Drop for StorageCall<'_> {
    fn drop(&mut self) {
        self.storage.calls.lock().unwrap().1.remove(&self.id);
    }
}
