//! Bugs that can be planted on purpose, so tests can show each checker of the simulator
//! catches the kind of bug it exists for. Settable only through the library (the simulator's
//! `--planted`), never from the node's command line or configuration.

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PlantedBug {
    #[default]
    None,
    /// Aborted debits are not refunded (money).
    SkipRefund,
    /// Tokens of older epochs are accepted (one token).
    AcceptStaleToken,
    /// A participant applies an abort to its prepared legs as a commit (atomicity).
    CommitOnAbort,
    /// A decide overwrites a decided record instead of compare-and-set (exactly once).
    NoCompareAndSet,
    /// Package writes are acknowledged before they are durable (durability).
    AckBeforeDurable,
    /// Every fifth package accepted at an origin is left out of its in-memory outbox (outbox).
    ForgetOutbox,
    /// Participants never ask about legs whose outcome did not arrive (liveness).
    NoResolver,
    /// Participants prepare legs without checking the holders' and tellers' signatures (trust).
    SkipSignatures,
    /// Read statements are taken at their word: the reader's signature is not checked (trust).
    SkipReadSignatures,
    /// The origin compacts decided records without waiting for every participant's ack and
    /// without a watermark: a participant still in doubt is told "never recorded" (compaction).
    CompactUnacked,
}
