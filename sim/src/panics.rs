//! turmoil swallows panics in spawned tasks (an axum handler, a node's background task), so a
//! process-wide hook records them for the simulation running on the panicking thread, and
//! the harness fails the run after the step in which one happened.

use std::cell::{Cell, RefCell};
use std::sync::Once;

thread_local! {
    static ACTIVE: Cell<bool> = const { Cell::new(false) };
    static PANICS: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
}

static INSTALL: Once = Once::new();

/// Installs the hook once per process. Other panics (threads with no simulation running,
/// the harness itself) go to the previous hook.
pub fn install() {
    INSTALL.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            // Only panics inside a simulated host (node code) are recorded; a panic of the
            // harness itself unwinds as usual and is printed.
            if ACTIVE.with(Cell::get) && turmoil::sim_elapsed().is_some() {
                let msg = info.to_string().replace('\n', " ");
                PANICS.with(|p| p.borrow_mut().push(msg));
            } else {
                previous(info);
            }
        }));
    });
}

/// Marks this thread as running a simulation until the guard drops.
pub struct Active;

impl Active {
    pub fn enter() -> Active {
        install();
        ACTIVE.with(|a| a.set(true));
        PANICS.with(|p| p.borrow_mut().clear());
        Active
    }
}

impl Drop for Active {
    fn drop(&mut self) {
        ACTIVE.with(|a| a.set(false));
    }
}

/// Panics recorded on this thread since the last call.
pub fn take() -> Vec<String> {
    PANICS.with(|p| std::mem::take(&mut *p.borrow_mut()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_in_a_spawned_task_of_a_host_is_recorded() {
        let _active = Active::enter();
        let mut sim = turmoil::Builder::new().build();
        sim.host("h", || async {
            tokio::spawn(async { panic!("boom in a handler") });
            std::future::pending::<()>().await;
            Ok(())
        });
        for _ in 0..5 {
            sim.step().unwrap(); // turmoil itself does not notice
        }
        let p = take();
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].contains("boom in a handler"));
    }
}
