//! JSON shapes of the client API and of the calls between banks. The client (`bank`) and
//! the simulator use these same types, so the contract lives in one place.

use crate::domain::{Account, AccountKind, Cpf};
use crate::package::leg::LegVote;
use crate::package::{OpResult, Outcome, Package, Status};
use crate::trust::decision::Decision;
use serde::{Deserialize, Serialize};

// ---- client API ----

#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    /// The user's CPF: 11 digits, or formatted `123.456.789-09`, with valid check digits.
    #[schema(example = "52998224725")]
    pub cpf: String,
    pub name: String,
    /// The user's Ed25519 public key (hex), made by the client on the user's machine.
    #[schema(pattern = "^[0-9a-fA-F]{64}$")]
    pub public_key: String,
    /// The key's signature of `trust::user::register_message` for this bank: proof that the
    /// registrant holds the private key.
    #[schema(pattern = "^[0-9a-fA-F]{128}$")]
    pub proof: String,
    /// An operator's signature of `trust::user::approve_message` (the person was checked at
    /// the counter): needed where the bank requires approval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<String>,
}

/// A holder's signature of a statement (an account opening).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HolderSignature {
    pub cpf: String,
    #[schema(pattern = "^[0-9a-fA-F]{128}$")]
    pub sig: String,
}

/// What a bank knows of a user's key (`/peer/users/{cpf}/key`): compared at registration.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct UserKeyView {
    pub key: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewAccount {
    pub kind: AccountKind,
    /// The holders' CPFs: one for a personal account, two or more for a joint one.
    #[schema(min_items = 1, max_items = 16)]
    pub holders: Vec<String>,
    /// When the holders signed (Unix ms): within 5 minutes of the bank's clock.
    pub time_ms: u64,
    /// Every holder's signature of `trust::user::open_account_message`.
    pub signatures: Vec<HolderSignature>,
}

#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct UserView {
    pub cpf: Cpf,
    pub name: String,
    /// The user's public key as this bank registered it, and its rotation number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key: Option<String>,
    #[serde(default)]
    pub key_seq: u64,
}

pub use crate::domain::KeyRotation;

/// A user's rotations as a bank passes them on (`/peer/users/{cpf}/key`): the ones it keeps,
/// oldest first, so a bank that missed some catches up.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RotationChain {
    pub rotations: Vec<KeyRotation>,
}

/// An operator replaces a lost key, at this bank only: signed with their teller key
/// (`trust::user::reset_message`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyReset {
    #[schema(pattern = "^[0-9a-fA-F]{64}$")]
    pub public_key: String,
    #[schema(pattern = "^[0-9a-fA-F]{128}$")]
    pub sig: String,
}

/// An account as a client sees it (`held` is the money in prepared debits).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AccountView {
    pub bank: String,
    pub key: String,
    pub kind: AccountKind,
    pub holders: Vec<Cpf>,
    pub balance: u64,
    pub blocked: u64,
    pub held: u64,
}

impl From<Account> for AccountView {
    fn from(a: Account) -> Self {
        AccountView { bank: a.bank, key: a.key, kind: a.kind, holders: a.holders, balance: a.balance.0, blocked: a.blocked.0, held: a.held.0 }
    }
}

/// A user's consortium-wide lookup, forwarded by the bank they asked
/// (`/peer/users/{cpf}/accounts`): their read statement as they signed it, which every bank
/// checks itself.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForwardedRead {
    pub statement: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AccountList {
    pub accounts: Vec<AccountView>,
}

#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BankAccounts {
    pub bank: String,
    pub reachable: bool,
    pub accounts: Vec<AccountView>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ConsortiumAccounts {
    pub banks: Vec<BankAccounts>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PackageView {
    pub id: String,
    pub status: Status,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub results: Vec<OpResult>,
    /// Between banks, once decided: the origin's signed decision, which participants need
    /// to apply the outcome.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<Decision>,
}

#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PeerView {
    pub bank: String,
    pub online: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TokenView {
    /// `gen@creator`, or null before this bank saw any token.
    pub epoch: Option<String>,
    pub held: bool,
    pub hop: u64,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Counters {
    pub submitted: u64,
    pub committed: u64,
    pub aborted: u64,
    pub executed: u64,
    pub tokens_created: u64,
    pub stale_dropped: u64,
    pub duplicates_dropped: u64,
    pub faults: u64,
    pub presumed_aborts: u64,
    /// Another bank holds a key for one of this bank's users that does not follow from this
    /// bank's (found passing a rotation on, or in a consortium-wide lookup): an alert for the
    /// operators, who check the person and reset one of the keys.
    #[serde(default)]
    pub key_mismatches: u64,
    /// Decided records this origin dropped after every participant acknowledged them.
    #[serde(default)]
    pub compacted_records: u64,
    /// Packages this bank took part in whose legs and row it dropped after their expiry.
    #[serde(default)]
    pub compacted_participations: u64,
    /// Lookups of an in-doubt package its origin answered "maybe compacted" (410): a broken
    /// origin or a lost database; the legs stay held, for the operators.
    #[serde(default)]
    pub in_doubt_compacted: u64,
    /// Messages from the network refused because they contradict this bank's records or
    /// break the protocol's rules, by reason (each is also logged with its sender).
    #[serde(default)]
    pub refused: std::collections::BTreeMap<String, u64>,
}

#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StatusView {
    pub bank: String,
    pub peers: Vec<PeerView>,
    pub token: TokenView,
    /// Packages accepted here and not yet decided.
    pub queued: usize,
    /// Legs prepared here whose outcome is not yet known.
    pub in_doubt: usize,
    pub counters: Counters,
}

// ---- the operator's routes (/admin/...) ----

/// A package with legs prepared at this bank whose outcome it has not learned.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InDoubtView {
    /// The bank that accepted the package: the only one that decides it.
    pub origin: String,
    pub id: String,
    /// When this bank prepared it (its own clock, Unix ms), if it was prepared by a version
    /// that keeps the time; and how long ago that is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prepared_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub age_ms: Option<u64>,
    /// This bank's prepared legs of it (the money held or blocked here).
    pub legs: Vec<crate::package::Leg>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InDoubtList {
    pub bank: String,
    /// The bank's clock when it answered (Unix ms).
    pub now_ms: u64,
    pub in_doubt: Vec<InDoubtView>,
    /// Set while the bank re-learns its decisions after a restore (`node admin restore`).
    #[serde(default)]
    pub reconciling: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyFingerprint {
    pub bank: String,
    pub fingerprint: String,
}

/// What operators compare across banks: the same manifest hash everywhere, each bank's key as
/// everyone holds it, and this bank's tellers' keys.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fingerprints {
    pub bank: String,
    /// The manifest's hash (hex, in full) and its fingerprint.
    pub manifest_hash: String,
    pub manifest: String,
    pub banks: Vec<KeyFingerprint>,
    /// This bank's tellers' public keys' fingerprints, as configured.
    pub tellers: Vec<String>,
}

// ---- a restored bank's reconciliation (/peer/reconcile) ----

/// What a participant keeps of a package it prepared: the package, and its origin's signed
/// decision once it arrived.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeptPackage {
    pub package: Package,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<Decision>,
}

/// What a bank knows of one package of the asking (restored) origin it took part in.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Participated {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<crate::package::PackageDigest>,
    /// The outcome this bank applied, if it learned one (unsigned: a claim).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Outcome>,
    /// This bank voted no on a leg: the package cannot have committed.
    #[serde(default)]
    pub refused: bool,
    /// The package and the origin's signed decision, where this bank kept them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kept: Option<KeptPackage>,
}

/// One of the answering bank's own decided packages with a leg at the asking bank.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecidedRecord {
    pub package: Package,
    pub decision: Decision,
}

/// A bank's answer to a restored bank's `POST /peer/reconcile`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReconcileAnswer {
    pub participated: Vec<Participated>,
    pub records: Vec<DecidedRecord>,
}

/// A restored bank's reconciliation, as the operator sees it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReconcileView {
    pub reconciling: bool,
    /// The other banks that answered (all of them, when done).
    pub answered: Vec<String>,
    /// This bank's packages whose outcome it cannot know: (id, why). Their ids stay taken;
    /// the operators settle them.
    pub lost: Vec<(String, String)>,
    /// What it could not re-apply, for the operators.
    pub problems: Vec<String>,
}

// ---- between banks (/peer/...) ----

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Ping {
    pub bank: String,
}

// The ring's messages live beside the ring's rules.
pub use crate::ring::{Alert, Block, PassAnswer, Probe, TokenPass};

/// Prepare this bank's legs of a package. It carries the whole package: each participant
/// derives its own legs from it, so no executor can hand it legs of its choosing, and it
/// compares the package's digest with any earlier prepare under the same (origin, id).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Prepare {
    pub origin: String,
    pub package: Package,
}

/// A participant's answer to one prepare: its votes on its legs, in the order the package
/// gives them, or why it refused the whole prepare.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Votes {
    pub votes: Vec<LegVote>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused: Option<String>,
}

/// Apply a package's outcome: only with its origin's signed decision.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Finish {
    pub origin: String,
    pub id: String,
    pub decision: Decision,
}

/// Decide a package at its origin (the bank the message is sent to: `origin` must name it).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Decide {
    pub origin: String,
    pub id: String,
    pub outcome: Outcome,
    /// Empty for a presumed abort.
    pub results: Vec<OpResult>,
}

/// What a submitted package looks like on the wire: the same as `Package`.
pub type SubmitPackage = Package;
