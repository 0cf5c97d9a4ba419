//! Durable tasks: work the orchestrator starts and the host completes later,
//! matched by a deterministic sequence number: timers, and calls of
//! activities, sub-orchestrations and entities.

use std::cell::RefCell;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use serde::de::DeserializeOwned;

use crate::Error;
use crate::context::State;
use crate::wire::{Action, Failure};

/// Where the host's completion of one task lands.
#[derive(Debug, Default)]
pub(crate) struct TaskSlot {
    /// `Ok(json)` or `Err(failure)`, once completed.
    pub(crate) result: RefCell<Option<Result<String, Failure>>>,
}

/// A durable timer; completes when the host fires it.
///
/// Dropping it before it fires cancels it: the orchestrator emits
/// `cancel-timer` and the host never fires it (so a wait that an event won,
/// like [`wait_for_event_with_timeout`], leaves no timer behind). Once its
/// generation has ended there is nothing to cancel: the host drops the
/// timers of an ended generation itself.
///
/// [`wait_for_event_with_timeout`]: crate::OrchestrationContext::wait_for_event_with_timeout
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
        let mut state = self.state.borrow_mut();
        // Still registered: it has not fired.
        let unfired = state.tasks.remove(&self.id).is_some();
        if unfired && !state.generation_ended {
            state.actions.push(Action::CancelTimer(self.id));
        }
    }
}

/// An activity, sub-orchestration or entity call in flight; resolves to its
/// output, decoded as `T`, or to its error (with the failure's kind and
/// retryability).
#[must_use = "a call does nothing unless awaited"]
pub struct TaskCall<T> {
    call: Call,
    /// "activity 'SayHello'", for error messages.
    what: String,
    _output: PhantomData<fn() -> T>,
}

enum Call {
    Scheduled {
        state: Rc<RefCell<State>>,
        id: u64,
        slot: Rc<TaskSlot>,
    },
    /// Never scheduled; the error until handed out.
    Failed(Option<Error>),
}

impl<T> TaskCall<T> {
    pub(crate) fn scheduled(
        state: Rc<RefCell<State>>,
        id: u64,
        slot: Rc<TaskSlot>,
        what: String,
    ) -> Self {
        TaskCall {
            call: Call::Scheduled { state, id, slot },
            what,
            _output: PhantomData,
        }
    }

    /// A call that fails without being scheduled (its input was not JSON).
    pub(crate) fn failed(error: Error, what: String) -> Self {
        TaskCall {
            call: Call::Failed(Some(error)),
            what,
            _output: PhantomData,
        }
    }
}

impl<T: DeserializeOwned> Future for TaskCall<T> {
    type Output = Result<T, Error>;

    fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let result = match &mut this.call {
            Call::Failed(error) => {
                return Poll::Ready(Err(error.take().expect("polled after completion")));
            }
            Call::Scheduled { slot, .. } => slot.result.borrow_mut().take(),
        };
        match result {
            None => Poll::Pending,
            Some(Ok(output)) => Poll::Ready(serde_json::from_str(&output).map_err(|error| {
                Error::new(format!(
                    "the output of {} does not have the expected shape: {error}",
                    this.what
                ))
            })),
            Some(Err(failure)) => {
                let message = format!("{} failed: {}", this.what, failure.message);
                Poll::Ready(Err(Error::from_failure(failure).with_message(message)))
            }
        }
    }
}

impl<T> Drop for TaskCall<T> {
    fn drop(&mut self) {
        if let Call::Scheduled { state, id, .. } = &self.call {
            state.borrow_mut().tasks.remove(id);
        }
    }
}

impl<T> std::fmt::Debug for TaskCall<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskCall")
            .field("what", &self.what)
            .finish_non_exhaustive()
    }
}

/// How [`OrchestrationContext::call_activity_with_retry`] retries: up to
/// `max_attempts` calls, waiting on durable timers in between, starting at
/// `first_interval` and multiplying by `backoff_coefficient` each time, up
/// to `max_interval`. A failure that is not retryable
/// ([`Error::is_retryable`]) ends the retries at once.
///
/// [`OrchestrationContext::call_activity_with_retry`]: crate::OrchestrationContext::call_activity_with_retry
///
/// ```
/// use std::time::Duration;
/// use reprise_sdk::RetryPolicy;
///
/// let policy = RetryPolicy::new(5, Duration::from_secs(1))
///     .with_backoff_coefficient(2.0)
///     .with_max_interval(Duration::from_secs(30));
/// assert_eq!(policy.max_attempts, 5);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub first_interval: Duration,
    pub backoff_coefficient: f64,
    pub max_interval: Duration,
}

impl RetryPolicy {
    /// Doubling intervals, capped at one hour.
    pub fn new(max_attempts: u32, first_interval: Duration) -> RetryPolicy {
        RetryPolicy {
            max_attempts,
            first_interval,
            backoff_coefficient: 2.0,
            max_interval: Duration::from_secs(3600),
        }
    }

    pub fn with_backoff_coefficient(mut self, coefficient: f64) -> RetryPolicy {
        self.backoff_coefficient = coefficient;
        self
    }

    pub fn with_max_interval(mut self, max_interval: Duration) -> RetryPolicy {
        self.max_interval = max_interval;
        self
    }

    /// The wait after failed attempt `attempt` (1-based).
    pub(crate) fn delay_after(&self, attempt: u32) -> Duration {
        let factor = self
            .backoff_coefficient
            .max(1.0)
            .powi(attempt.saturating_sub(1) as i32);
        self.first_interval
            .mul_f64(factor.min(1e9))
            .min(self.max_interval)
    }
}
