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

use crate::error::Error;
use crate::node::Node;
use crate::package::intake;
use crate::package::record::Record;
use crate::store::{Write, Written};
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, oneshot};

/// Most writes one transaction takes (bounds the transaction and the wait of the first).
const MAX_GROUP: usize = 512;

struct Job {
    write: Write,
    reply: oneshot::Sender<Result<Written, Error>>,
}

pub struct Writer {
    tx: mpsc::UnboundedSender<Job>,
    rx: Mutex<Option<mpsc::UnboundedReceiver<Job>>>,
}

impl Default for Writer {
    fn default() -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        Writer { tx, rx: Mutex::new(Some(rx)) }
    }
}

/// Writes durably, with whatever else is being written at the same moment.
pub async fn write(node: &Node, write: Write) -> Result<Written, Error> {
    let (reply, answer) = oneshot::channel();
    node.writer.tx.send(Job { write, reply }).map_err(|_| Error::internal("writer stopped"))?;
    answer.await.map_err(|_| Error::internal("writer stopped before answering"))?
}

/// The task: one group at a time.
pub async fn run(node: Arc<Node>) {
    let Some(mut rx) = node.writer.rx.lock().unwrap().take() else { return };
    while let Some(first) = rx.recv().await {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(j) => group.push(j),
                Err(_) => break,
            }
        }
        let (writes, replies): (Vec<Write>, Vec<_>) = group.into_iter().map(|j| (j.write, j.reply)).unzip();
        match node.db(move |s| s.write_group(writes)).await {
            Ok(answers) => {
                assert_eq!(answers.len(), replies.len(), "one answer per write");
                for a in &answers {
                    committed(&node, a);
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

/// What follows a commit in memory.
fn committed(node: &Node, a: &Written) {
    match a {
        Written::Submit(Ok((r, true))) => {
            node.intake.accepted(r, node.planted);
            node.count(|c| c.submitted += 1);
            node.report(crate::events::NodeEvent::PackageAccepted { key: r.key() });
            node.ring.tell(crate::ring::machine::Event::WorkArrived);
        }
        Written::Decide(each) => {
            for (r, how) in each.iter().filter_map(|d| d.as_ref().ok()) {
                if *how == crate::package::record::Decided::Now {
                    node.count(|c| match r.status {
                        crate::package::Status::Committed => c.committed += 1,
                        _ => c.aborted += 1,
                    });
                    node.report(crate::events::NodeEvent::PackageDecided { key: r.key(), status: r.status });
                }
            }
            let standing: Vec<&Record> = each.iter().filter_map(|d| d.as_ref().ok()).map(|(r, _)| r).collect();
            node.intake.decided(&standing);
            intake::tell_decided(node, &standing);
        }
        _ => {}
    }
}
