//! Group commit: the one task that writes packages' state to this bank's store.
//!
//! Every write a package needs (accepting it, preparing legs, deciding, finishing) must be on
//! disk before it is answered. One transaction each made the store the bottleneck under load:
//! a commit queued behind the others (8 ms for a submission at 64 clients), and the executor's
//! prepares and decides queued behind the submissions. So those writes go through this task,
//! which commits whatever queued up meanwhile in one transaction (`Store::write_group`):
//! the same outcome as committing them one after the other, for one fsync.
//!
//! What must change together with the store (the in-memory outbox, the clients waiting for
//! a decision) changes here, right after the commit and before anything else runs, so no
//! other task ever sees one without the other.

use super::intake::Intake;
use super::record::{Decided, Record};
use super::{Package, Status};
use crate::context::Context;
use crate::error::Error;
use crate::store::{Storage, Write, Written};
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, oneshot};

/// Most writes one transaction takes (bounds the transaction and the wait of the first).
const MAX_GROUP: usize = 512;

struct Job {
    write: Write,
    reply: oneshot::Sender<Result<Written, Error>>,
}

/// Writes waiting for the next group commit: the handle writers hold. Cheap to clone.
#[derive(Clone)]
pub struct Writer {
    tx: mpsc::UnboundedSender<Job>,
    /// The inbox until the task takes it.
    rx: Arc<Mutex<Option<mpsc::UnboundedReceiver<Job>>>>,
}

impl Default for Writer {
    fn default() -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        Writer { tx, rx: Arc::new(Mutex::new(Some(rx))) }
    }
}

impl Writer {
    /// Writes durably, with whatever else is being written at the same moment.
    pub async fn write(&self, write: Write) -> Result<Written, Error> {
        let (reply, answer) = oneshot::channel();
        self.tx.send(Job { write, reply }).map_err(|_| Error::internal("writer stopped"))?;
        answer.await.map_err(|_| Error::internal("writer stopped before answering"))?
    }

    /// Accepts a package durably at its origin, this bank. Returns the record and whether it
    /// is new.
    pub async fn submit(&self, origin: String, package: Package) -> Result<(Record, bool), Error> {
        match self.write(Write::Submit { package, origin }).await? {
            Written::Submit(answer) => answer,
            other => unreachable!("a submission answered {other:?}"),
        }
    }
}

/// What the writer's task changes besides the store.
pub struct Committer {
    pub ctx: Context,
    pub storage: Storage,
    pub intake: Intake,
    /// Tells the ring a package was accepted here. A hook (`node.rs` wires it), so the
    /// packages' modules do not depend on the ring's, which runs them.
    pub work_arrived: Box<dyn Fn() + Send + Sync>,
}

/// The task: one group at a time.
pub async fn run(writer: Writer, after: Committer) {
    let Some(mut rx) = writer.rx.lock().unwrap().take() else { return };
    while let Some(first) = rx.recv().await {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(j) => group.push(j),
                Err(_) => break,
            }
        }
        let (writes, replies): (Vec<Write>, Vec<_>) = group.into_iter().map(|j| (j.write, j.reply)).unzip();
        let (n, began) = (writes.len(), tokio::time::Instant::now());
        match after.storage.db(move |s| s.write_group(writes)).await {
            Ok(answers) => {
                after.ctx.metrics.group_committed(n, began.elapsed());
                assert_eq!(answers.len(), replies.len(), "one answer per write");
                for a in &answers {
                    after.committed(a);
                }
                for (reply, a) in replies.into_iter().zip(answers) {
                    let _ = reply.send(Ok(a)); // the asker may have gone; the write stands
                }
            }
            Err(e) => {
                for reply in replies {
                    let _ = reply.send(Err(e.clone()));
                }
            }
        }
    }
}

impl Committer {
    /// What follows a commit in memory.
    fn committed(&self, a: &Written) {
        let ctx = &self.ctx;
        match a {
            Written::Submit(Ok((r, true))) => {
                self.intake.accepted(r, ctx.planted);
                ctx.metrics.accepted(r.seq);
                ctx.count(|c| c.submitted += 1);
                ctx.report(crate::events::NodeEvent::PackageAccepted { key: r.key() });
                (self.work_arrived)();
            }
            Written::Decide(each) => {
                for (r, how) in each.iter().filter_map(|d| d.as_ref().ok()) {
                    if *how == Decided::Now {
                        ctx.metrics.decided(r.seq);
                        ctx.count(|c| match r.status {
                            Status::Committed => c.committed += 1,
                            _ => c.aborted += 1,
                        });
                        ctx.report(crate::events::NodeEvent::PackageDecided { key: r.key(), status: r.status });
                    }
                }
                let standing: Vec<&Record> = each.iter().filter_map(|d| d.as_ref().ok()).map(|(r, _)| r).collect();
                self.intake.decided(&standing);
                self.intake.tell_decided(&standing);
            }
            _ => {}
        }
    }
}
