//! Wall-clock time, behind a seam. Signed times (bank-to-bank requests, later expiries and
//! read statements) need the time of day, which tokio's clock does not give. Production reads
//! the system clock; the simulator gives a fixed epoch plus simulated elapsed time, plus a
//! per-bank skew, so runs stay deterministic.

/// Milliseconds since the Unix epoch, as this bank believes it.
pub trait WallClock: Send + Sync + 'static {
    fn now_ms(&self) -> u64;
}

pub struct SystemClock;

impl WallClock for SystemClock {
    fn now_ms(&self) -> u64 {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
    }
}

/// A clock that reads a fixed time (unit tests).
pub struct FixedClock(pub u64);

impl WallClock for FixedClock {
    fn now_ms(&self) -> u64 {
        self.0
    }
}
