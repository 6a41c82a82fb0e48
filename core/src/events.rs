//! What a bank reports about itself. Production logs it; the simulator records it as the
//! run's trace and reads the typed fields of the events its checks need (never the text).

use crate::package::{Outcome, PackageKey, Status};
use crate::ring::Epoch;

#[derive(Clone, Debug, PartialEq)]
pub enum NodeEvent {
    /// A token pass was taken (one line per pass: the simulator checks from these that no hop
    /// of an epoch is taken twice and no bank goes back to an older epoch).
    TokenAccepted { epoch: Epoch, hop: u64, from: String },
    /// This bank created the token of a new epoch.
    TokenCreated { epoch: Epoch },
    /// A client's package was recorded at its origin (this bank).
    PackageAccepted { key: PackageKey },
    /// This bank, the origin, decided a package.
    PackageDecided { key: PackageKey, status: Status },
    /// Outcomes applied to this bank's legs; `moved` legs moved money.
    LegsFinished { moved: usize, items: Vec<(PackageKey, Outcome)> },
    /// A message from the network was refused. `from` is who sent it as far as this bank
    /// knows (a member it authenticated, or an address and a claim); `remote` the connection's
    /// address when it came in over one; `nonce` set when it was a replay of a request seen.
    Refused { from: String, remote: Option<std::net::SocketAddr>, code: &'static str, message: String, nonce: Option<String> },
    /// Everything else: a kind and a line of text for people.
    Note { kind: &'static str, detail: String },
}

impl NodeEvent {
    pub fn note(kind: &'static str, detail: impl Into<String>) -> NodeEvent {
        NodeEvent::Note { kind, detail: detail.into() }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            NodeEvent::TokenAccepted { .. } => "token_accepted",
            NodeEvent::TokenCreated { .. } => "token_created",
            NodeEvent::PackageAccepted { .. } => "package_accepted",
            NodeEvent::PackageDecided { .. } => "package_decided",
            NodeEvent::LegsFinished { .. } => "legs_finished",
            NodeEvent::Refused { .. } => "refused",
            NodeEvent::Note { kind, .. } => kind,
        }
    }

    /// The line people read (logs, the simulator's trace).
    pub fn detail(&self) -> String {
        match self {
            NodeEvent::TokenAccepted { epoch, hop, from } => format!("{epoch} hop {hop} from {from}"),
            NodeEvent::TokenCreated { epoch } => epoch.to_string(),
            NodeEvent::PackageAccepted { key } => key.to_string(),
            NodeEvent::PackageDecided { key, status } => format!("{key} {status:?}"),
            NodeEvent::LegsFinished { moved, items } => {
                let shown: Vec<String> = items.iter().map(|(k, o)| format!("{k} {o:?}")).collect();
                format!("{moved} legs: {}", shown.join(", "))
            }
            NodeEvent::Refused { from, code, message, .. } => format!("from {from}: {message} ({code})"),
            NodeEvent::Note { detail, .. } => detail.clone(),
        }
    }
}
