//! What a node reports about itself (`consortium_core::events::NodeEvent`). Production logs
//! it; the simulator records it as the run's trace (so the trace is the node's own account of
//! what it did, not a copy) and reads the typed fields its checks need.

pub use consortium_core::events::NodeEvent;

pub trait Events: Send + Sync + 'static {
    fn emit(&self, bank: &str, event: NodeEvent);
}

/// Production: structured logs through `tracing`.
pub struct LogEvents;

/// Event kinds that happen on every token pass or every package step: useful in a trace,
/// noise in a production log, so logged at debug level.
pub const CHATTY: &[&str] = &["token_accepted", "package_prepared", "pass_retry"];

/// Event kinds an operator should look at: a message from the network was refused; another
/// bank holds a different key for a user.
pub const WARNINGS: &[&str] = &["refused", "key_mismatch"];

impl Events for LogEvents {
    fn emit(&self, bank: &str, event: NodeEvent) {
        let kind = event.kind();
        let detail = event.detail();
        if WARNINGS.contains(&kind) {
            tracing::warn!(bank, event = kind, "{detail}");
        } else if CHATTY.contains(&kind) {
            tracing::debug!(bank, event = kind, "{detail}");
        } else {
            tracing::info!(bank, event = kind, "{detail}");
        }
    }
}
