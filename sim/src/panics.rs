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

/// Installs the hook once per process. Panics on threads with no simulation running go to
/// the previous hook (tests that expect panics still print as usual).
pub fn install() {
    INSTALL.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if ACTIVE.with(Cell::get) {
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
