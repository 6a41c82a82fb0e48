//! What a node reports about itself. Production logs it; the simulator records it as the
//! run's trace (so the trace is the node's own account of what it did, not a copy).

pub trait Events: Send + Sync + 'static {
    fn emit(&self, bank: &str, kind: &'static str, detail: String);
}

/// Production: structured logs through `tracing`.
pub struct LogEvents;

impl Events for LogEvents {
    fn emit(&self, bank: &str, kind: &'static str, detail: String) {
        tracing::info!(bank, event = kind, "{detail}");
    }
}
