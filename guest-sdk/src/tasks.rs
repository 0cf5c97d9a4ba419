//! Durable tasks: work the orchestrator starts and the host completes later,
//! matched by a deterministic sequence number. Timers are the first kind.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use crate::context::State;

/// Where the host's completion of one task lands.
#[derive(Debug, Default)]
pub(crate) struct TaskSlot {
    /// `Ok(json)` or `Err(message)`, once completed.
    pub(crate) result: RefCell<Option<Result<String, String>>>,
}

/// A durable timer; completes when the host fires it.
///
/// Dropping it before it fires abandons it: the host still fires it, and
/// the orchestrator ignores that.
#[must_use = "a timer does nothing unless awaited"]
#[derive(Debug)]
pub struct Timer {
    state: Rc<RefCell<State>>,
    id: u64,
    slot: Rc<TaskSlot>,
}

impl Timer {
    pub(crate) fn new(state: Rc<RefCell<State>>, id: u64, slot: Rc<TaskSlot>) -> Timer {
        Timer { state, id, slot }
    }
}

impl Future for Timer {
    type Output = ();

    fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<()> {
        if self.slot.result.borrow().is_some() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

impl Drop for Timer {
    fn drop(&mut self) {
        self.state.borrow_mut().tasks.remove(&self.id);
    }
}
