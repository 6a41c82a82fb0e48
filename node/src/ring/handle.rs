//! How the rest of the bank talks to the ring's owner task (`driver`): events in, answers
//! back, and a view of its state (published after every event) for reads that need no answer
//! from the owner. Cheap to clone.

use super::machine::{Answer, Event, RingMachine, RingView, Timing};
use crate::config::ms;
use crate::error::Error;
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

pub(super) struct Input {
    pub(super) event: Event,
    pub(super) reply: Option<oneshot::Sender<Answer>>,
}

/// The machine and its inbox, until the owner task takes them.
pub(super) type Parts = Option<(RingMachine, mpsc::UnboundedReceiver<Input>)>;

#[derive(Clone)]
pub struct RingHandle {
    tx: mpsc::UnboundedSender<Input>,
    pub(super) parts: Arc<Mutex<Parts>>,
    pub(super) view: Arc<Mutex<RingView>>,
    /// Time zero of the machine's clock.
    pub(super) start: Instant,
}

impl RingHandle {
    pub fn new(machine: RingMachine) -> RingHandle {
        let (tx, rx) = mpsc::unbounded_channel();
        let view = machine.view();
        RingHandle { tx, parts: Arc::new(Mutex::new(Some((machine, rx)))), view: Arc::new(Mutex::new(view)), start: Instant::now() }
    }

    pub fn view(&self) -> RingView {
        self.view.lock().unwrap().clone()
    }

    /// Tells the ring something happened; no answer.
    pub fn tell(&self, event: Event) {
        // Closed only when the node is gone.
        let _ = self.tx.send(Input { event, reply: None });
    }

    /// Asks the ring and waits for its answer.
    pub async fn ask(&self, event: Event) -> Result<Answer, Error> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(Input { event, reply: Some(reply) }).map_err(|_| Error::unavailable("ring_stopped", "the ring task has stopped"))?;
        rx.await.map_err(|_| Error::unavailable("ring_stopped", "the ring task gave no answer"))
    }
}

/// The ring machine's timings, from the bank's configuration.
pub fn timing(t: &crate::config::Timing) -> Timing {
    Timing {
        idle_hold: ms(t.idle_hold_ms),
        idle_hold_max: ms(t.idle_hold_max_ms),
        token_loss: ms(t.token_loss_ms),
        startup_check: ms(t.startup_check_ms),
        block: ms(t.block_ms),
        peer_timeout: ms(t.peer_timeout_ms),
        pass_floor: ms(t.pass_floor_ms),
        loss_floor: ms(t.loss_floor_ms),
    }
}
