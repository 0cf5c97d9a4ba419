//! The deterministic executor behind the `execution` resource.
//!
//! The host calls `step` with history events; the executor applies them one
//! at a time and polls the orchestrator after each one that can let it make
//! progress. Because events are applied one at a time, feeding a history in
//! one call or spread over many calls gives the same actions: warm executions
//! and cold replays agree.

use std::cell::RefCell;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker};

use serde::Serialize;

use crate::bindings::exports::reprise::orchestration::orchestrator::GuestExecution;
use crate::context::State;
use crate::logging::LogSink;
use crate::wire::{Action, ContinueAsNew, Failure, HistoryEvent};
use crate::{Error, OrchestrationContext};

/// An orchestrator function's future, with its output already JSON-encoded.
pub type RunningOrchestrator = Pin<Box<dyn Future<Output = Result<String, Failure>>>>;

/// The orchestrators a component exports; implemented by `export_orchestrators!`.
pub trait Registry: 'static {
    fn names() -> Vec<String>;
    fn start(name: &str, context: OrchestrationContext) -> Option<RunningOrchestrator>;
}

/// Runs an orchestrator function, encoding its result for the host.
pub fn run<F, Fut, T, E>(function: F, context: OrchestrationContext) -> RunningOrchestrator
where
    F: FnOnce(OrchestrationContext) -> Fut,
    Fut: Future<Output = Result<T, E>> + 'static,
    T: Serialize,
    E: std::fmt::Display + 'static,
{
    let future = function(context);
    Box::pin(async move {
        match future.await {
            Ok(output) => serde_json::to_string(&output).map_err(|error| {
                Error::new(format!(
                    "the orchestrator's output is not valid JSON: {error}"
                ))
                .into_failure()
            }),
            Err(error) => Err(Error::failure_of(error)),
        }
    })
}

/// One generation of one instance, as seen by the guest.
pub struct Execution<R> {
    inner: RefCell<Executor>,
    _registry: PhantomData<R>,
}

impl<R: Registry> GuestExecution for Execution<R> {
    fn new(name: String, instance_id: String, input: String) -> Self {
        Execution {
            inner: RefCell::new(Executor::new::<R>(name, instance_id, input)),
            _registry: PhantomData,
        }
    }

    fn step(&self, events: Vec<HistoryEvent>, replaying: bool) -> Vec<Action> {
        self.inner.borrow_mut().step(events, replaying)
    }
}

enum Progress {
    /// Waiting for the first orchestrator-started event.
    NotStarted(RunningOrchestrator),
    Running(RunningOrchestrator),
    /// The function returned; its result becomes the terminal action at the
    /// end of the current step, so events later in the same step are carried over.
    Returned(Result<String, Failure>),
    /// The terminal action was emitted; nothing more happens.
    Finished,
}

/// Registry-independent part of [`Execution`], so it can be tested natively.
pub(crate) struct Executor {
    state: Rc<RefCell<State>>,
    progress: Progress,
    woken: Arc<Flag>,
}

impl Executor {
    pub(crate) fn new<R: Registry>(name: String, instance_id: String, input: String) -> Executor {
        Executor::with_start(name, instance_id, input, |name, context| {
            R::start(name, context).ok_or_else(|| {
                let message = format!(
                    "this component has no orchestrator named '{name}'; it has {:?}",
                    R::names()
                );
                Error::new(message)
                    .with_kind("not-found")
                    .non_retryable()
                    .into_failure()
            })
        })
    }

    /// An executor for the orchestrator `start` makes from its name and
    /// context; an `Err` from `start` fails the execution at its first step.
    pub(crate) fn with_start(
        name: String,
        instance_id: String,
        input: String,
        start: impl FnOnce(&str, OrchestrationContext) -> Result<RunningOrchestrator, Failure>,
    ) -> Executor {
        let state = Rc::new(RefCell::new(State::new(name.clone(), instance_id, input)));
        let context = OrchestrationContext::new(Rc::clone(&state));
        let progress = match start(&name, context) {
            Ok(future) => Progress::NotStarted(future),
            Err(error) => Progress::Returned(Err(error)),
        };
        Executor {
            state,
            progress,
            woken: Arc::new(Flag::default()),
        }
    }

    /// Sends the execution's log lines to `sink` instead of stderr.
    pub(crate) fn set_log_sink(&mut self, sink: LogSink) {
        self.state.borrow_mut().log_sink = sink;
    }

    /// Applies `events` in order; returns the actions taken meanwhile.
    /// `replaying` is what [`OrchestrationContext::is_replaying`] answers
    /// during the step.
    pub(crate) fn step(&mut self, events: Vec<HistoryEvent>, replaying: bool) -> Vec<Action> {
        self.state.borrow_mut().replaying = replaying;
        for event in events {
            if self.apply(event) {
                self.run_until_stalled();
            }
        }
        self.finish_if_returned();
        std::mem::take(&mut self.state.borrow_mut().actions)
    }

    /// Applies one event; true if the orchestrator may progress.
    fn apply(&mut self, event: HistoryEvent) -> bool {
        if let HistoryEvent::OrchestratorStarted(timestamp) = event {
            self.state.borrow_mut().now_ms = timestamp;
            return self.begin();
        }
        let mut state = self.state.borrow_mut();
        match event {
            HistoryEvent::ExecutionStarted(_) | HistoryEvent::OrchestratorStarted(_) => false,
            HistoryEvent::EventRaised(event) => state.deliver(event),
            HistoryEvent::TimerFired(id) => state.complete_task(id, Ok("null".to_owned())),
            HistoryEvent::ActivityCompleted(done)
            | HistoryEvent::SubOrchestrationCompleted(done)
            | HistoryEvent::EntityCallCompleted(done) => {
                state.complete_task(done.id, Ok(done.output))
            }
            HistoryEvent::ActivityFailed(failed)
            | HistoryEvent::SubOrchestrationFailed(failed)
            | HistoryEvent::EntityCallFailed(failed) => {
                state.complete_task(failed.id, Err(failed.failure))
            }
            HistoryEvent::EntitiesLocked(id) => state.lock_granted(id),
        }
    }

    /// Starts the orchestrator at its first episode; true if it was not running yet.
    fn begin(&mut self) -> bool {
        match std::mem::replace(&mut self.progress, Progress::Finished) {
            Progress::NotStarted(future) => {
                self.progress = Progress::Running(future);
                true
            }
            other => {
                self.progress = other;
                false
            }
        }
    }

    fn run_until_stalled(&mut self) {
        let Progress::Running(future) = &mut self.progress else {
            return;
        };
        let waker = Waker::from(Arc::clone(&self.woken));
        let mut context = Context::from_waker(&waker);
        loop {
            self.woken.0.store(false, Ordering::Relaxed);
            if let Poll::Ready(result) = future.as_mut().poll(&mut context) {
                self.progress = Progress::Returned(result);
                return;
            }
            // A future that woke itself (e.g. a yield), or an event passed on
            // to another wait, wants another poll.
            let handed_over = std::mem::take(&mut self.state.borrow_mut().handed_over);
            if !self.woken.0.load(Ordering::Relaxed) && !handed_over {
                return;
            }
        }
    }

    fn finish_if_returned(&mut self) {
        let result = match std::mem::replace(&mut self.progress, Progress::Finished) {
            Progress::Returned(result) => result,
            other => {
                self.progress = other;
                return;
            }
        };
        let mut state = self.state.borrow_mut();
        state.generation_ended = true;
        let action = match result {
            Err(failure) => Action::Fail(failure),
            Ok(output) => match state.continue_as_new.take() {
                Some(input) => Action::ContinueAsNew(ContinueAsNew {
                    input,
                    carried_over_events: state
                        .buffered
                        .drain(..)
                        .map(|arrived| arrived.event)
                        .collect(),
                }),
                None => Action::Complete(output),
            },
        };
        state.actions.push(action);
    }
}

impl Drop for Executor {
    /// What the orchestrator's handles do as they are dropped with it no
    /// longer concerns the host.
    fn drop(&mut self) {
        self.state.borrow_mut().generation_ended = true;
    }
}

#[derive(Default)]
struct Flag(AtomicBool);

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.0.store(true, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod conformance;
#[cfg(test)]
mod tests;
