//! What an orchestrator sees: its input, the replay-safe clock, and events.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::entity_calls::LockState;
use crate::logging::LogSink;
use crate::tasks::{RetryPolicy, TaskCall, TaskSlot, Timer};
use crate::wire::{
    Action, CreateTimer, EventRaised, Failure, ScheduleActivity, SendEvent, StartOrchestration,
    StartSubOrchestration,
};
use crate::{Either, Error, when_either};

/// State shared by the executor and every handle the orchestrator holds.
#[derive(Debug)]
pub(crate) struct State {
    pub(crate) name: String,
    pub(crate) instance_id: String,
    pub(crate) input: String,
    /// Timestamp of the latest orchestrator-started event, in Unix ms.
    pub(crate) now_ms: u64,
    /// Delivered events nobody has waited for yet, in arrival order.
    pub(crate) buffered: VecDeque<Arrived>,
    /// Arrival number of the next delivered event.
    next_arrival: u64,
    /// Set when an event changed hands outside of `deliver` (a dropped wait
    /// passed it on), so the executor polls once more.
    pub(crate) handed_over: bool,
    /// Pending `wait_for_event` calls, oldest first.
    pub(crate) waiters: VecDeque<Rc<EventSlot>>,
    /// Actions taken since the executor last collected them.
    pub(crate) actions: Vec<Action>,
    /// Input of the next generation, once `continue_as_new` was called.
    pub(crate) continue_as_new: Option<String>,
    /// ID of the next task this generation schedules.
    next_task: u64,
    /// Scheduled tasks whose completion someone still waits for.
    pub(crate) tasks: HashMap<u64, Rc<TaskSlot>>,
    /// Whether the step in progress replays recorded episodes.
    pub(crate) replaying: bool,
    /// Set once the terminal action is taken (or the execution is dropped):
    /// what handles do when dropped afterwards (cancel a timer, release a
    /// lock) no longer concerns the host, which ends those with the
    /// generation.
    pub(crate) generation_ended: bool,
    /// The lock task of `lock_entities`, while one is open.
    pub(crate) lock: LockState,
    /// Where replay-safe log lines go.
    pub(crate) log_sink: LogSink,
}

impl State {
    pub(crate) fn new(name: String, instance_id: String, input: String) -> State {
        State {
            name,
            instance_id,
            input,
            now_ms: 0,
            buffered: VecDeque::new(),
            next_arrival: 0,
            handed_over: false,
            waiters: VecDeque::new(),
            actions: Vec::new(),
            continue_as_new: None,
            next_task: 0,
            tasks: HashMap::new(),
            replaying: false,
            generation_ended: false,
            lock: LockState::default(),
            log_sink: LogSink::default(),
        }
    }

    /// Numbers a new task and registers where its completion goes.
    pub(crate) fn schedule(&mut self) -> (u64, Rc<TaskSlot>) {
        let id = self.next_task;
        self.next_task += 1;
        let slot = Rc::new(TaskSlot::default());
        self.tasks.insert(id, Rc::clone(&slot));
        (id, slot)
    }

    /// Records the host's completion of task `id`. Returns whether anyone
    /// waits for it (a dropped timer, say, is ignored).
    pub(crate) fn complete_task(&mut self, id: u64, result: Result<String, Failure>) -> bool {
        match self.tasks.remove(&id) {
            Some(slot) => {
                *slot.result.borrow_mut() = Some(result);
                true
            }
            None => false,
        }
    }

    /// Hands `event` to the oldest waiter for its name, or buffers it.
    /// Returns whether a waiter received it (and so the orchestrator may progress).
    pub(crate) fn deliver(&mut self, event: EventRaised) -> bool {
        let arrived = Arrived {
            order: self.next_arrival,
            event,
        };
        self.next_arrival += 1;
        self.hand_over(arrived)
    }

    fn hand_over(&mut self, arrived: Arrived) -> bool {
        let waiter = self
            .waiters
            .iter()
            .position(|slot| names_match(&slot.name, &arrived.event.name));
        match waiter {
            Some(index) => {
                let slot = self.waiters.remove(index).expect("index is in range");
                *slot.arrived.borrow_mut() = Some(arrived);
                true
            }
            None => {
                // Back into arrival order (a returned event may be older than others).
                let position = self
                    .buffered
                    .iter()
                    .position(|other| other.order > arrived.order)
                    .unwrap_or(self.buffered.len());
                self.buffered.insert(position, arrived);
                false
            }
        }
    }

    fn take_buffered(&mut self, name: &str) -> Option<Arrived> {
        let index = self
            .buffered
            .iter()
            .position(|arrived| names_match(&arrived.event.name, name))?;
        self.buffered.remove(index)
    }
}

/// A delivered event with its place in the order of arrival.
#[derive(Debug)]
pub(crate) struct Arrived {
    order: u64,
    pub(crate) event: EventRaised,
}

/// Event names are case-insensitive, as in Durable Functions.
pub(crate) fn names_match(a: &str, b: &str) -> bool {
    a == b || a.to_lowercase() == b.to_lowercase()
}

/// A `wait_for_event` call that has not received its event yet.
#[derive(Debug)]
pub(crate) struct EventSlot {
    name: String,
    arrived: RefCell<Option<Arrived>>,
}

/// The orchestrator's handle on its instance. Cheap to clone.
///
/// Everything it returns is replay-safe: the same history yields the same
/// values, so the orchestrator takes the same decisions on every replay.
#[derive(Clone, Debug)]
pub struct OrchestrationContext {
    state: Rc<RefCell<State>>,
}

impl OrchestrationContext {
    pub(crate) fn new(state: Rc<RefCell<State>>) -> OrchestrationContext {
        OrchestrationContext { state }
    }

    /// The state every handle shares, for the context's methods defined
    /// in other modules.
    pub(crate) fn state(&self) -> &Rc<RefCell<State>> {
        &self.state
    }

    /// The input this generation was started with (the start request's body,
    /// or the value passed to [`continue_as_new`](Self::continue_as_new)).
    ///
    /// ```no_run
    /// # async fn example(ctx: reprise_sdk::OrchestrationContext) -> Result<(), reprise_sdk::Error> {
    /// // An empty start request is `null`: take an Option to give it a default.
    /// let count: i64 = ctx.input::<Option<i64>>()?.unwrap_or(0);
    /// # Ok(()) }
    /// ```
    ///
    /// Inputs encoded twice are decoded once more: some Durable Functions
    /// clients (Python's `start_new`) send `"0"` for `0` and `"\"a\""` for
    /// `"a"`. A JSON string whose content is one JSON string, or whose
    /// content fits `T` when the string itself does not, is decoded from its
    /// content; otherwise a `String` gets the string as sent (`"0"`).
    pub fn input<T: DeserializeOwned>(&self) -> Result<T, Error> {
        let state = self.state.borrow();
        crate::payload::decode(&state.input)
            .map_err(|error| Error::new(format!("input does not have the expected shape: {error}")))
    }

    /// The instance's ID, as given at start or generated by the host.
    pub fn instance_id(&self) -> String {
        self.state.borrow().instance_id.clone()
    }

    /// The name this orchestrator was registered under.
    pub fn name(&self) -> String {
        self.state.borrow().name.clone()
    }

    /// True while the host replays recorded episodes to rebuild this
    /// execution's state, false while it runs a new episode. Decisions must
    /// not depend on it (replay must take the same actions); it is for
    /// effects outside the history that should happen once, like logging:
    /// see [`log`](Self::log).
    pub fn is_replaying(&self) -> bool {
        self.state.borrow().replaying
    }

    /// The replay-safe "now": when the host started the current episode.
    ///
    /// Use it instead of `SystemTime::now()`; it is the same on every replay.
    pub fn current_time(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(self.state.borrow().now_ms)
    }

    /// A UUID that is the same on every replay of this instance's history.
    ///
    /// The host seeds the orchestrator's random source from the instance ID
    /// and generation, so the sequence of UUIDs is part of the replay.
    pub fn new_uuid(&self) -> uuid::Uuid {
        uuid::Uuid::new_v4()
    }

    /// Waits for the external event `name` (case-insensitive) and decodes its
    /// JSON payload as `T`.
    ///
    /// Nothing is lost: an event raised before anyone waits for it is kept
    /// and handed to the first wait for its name, in the order events arrived.
    /// A payload sent as a JSON string is decoded as [`input`](Self::input)
    /// decodes one (the Python client sends `"true"` for `true`).
    ///
    /// ```no_run
    /// # async fn example(ctx: reprise_sdk::OrchestrationContext) -> Result<(), reprise_sdk::Error> {
    /// let approved: bool = ctx.wait_for_event("approval").await?;
    /// # Ok(()) }
    /// ```
    pub fn wait_for_event<T: DeserializeOwned>(&self, name: &str) -> EventFuture<T> {
        let mut state = self.state.borrow_mut();
        let wait = match state.take_buffered(name) {
            Some(arrived) => Wait::Ready(Some(arrived)),
            None => {
                let slot = Rc::new(EventSlot {
                    name: name.to_owned(),
                    arrived: RefCell::new(None),
                });
                state.waiters.push_back(Rc::clone(&slot));
                Wait::Pending(slot)
            }
        };
        EventFuture {
            state: Rc::clone(&self.state),
            name: name.to_owned(),
            wait,
            _payload: PhantomData,
        }
    }

    /// A durable timer that fires at `fire_at`. It survives host restarts,
    /// and costs nothing while it waits: the orchestrator is not in memory.
    ///
    /// ```no_run
    /// # async fn example(ctx: reprise_sdk::OrchestrationContext) -> Result<(), reprise_sdk::Error> {
    /// use std::time::Duration;
    /// let tomorrow = ctx.current_time() + Duration::from_secs(24 * 3600);
    /// ctx.create_timer(tomorrow).await;
    /// # Ok(()) }
    /// ```
    pub fn create_timer(&self, fire_at: SystemTime) -> Timer {
        let fire_at_ms = fire_at
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since_epoch| since_epoch.as_millis() as u64);
        let mut state = self.state.borrow_mut();
        let (id, slot) = state.schedule();
        state.actions.push(Action::CreateTimer(CreateTimer {
            id,
            fire_at: fire_at_ms,
        }));
        Timer::new(Rc::clone(&self.state), id, slot)
    }

    /// A durable timer that fires `duration` after [`current_time`](Self::current_time).
    ///
    /// ```no_run
    /// # async fn example(ctx: reprise_sdk::OrchestrationContext) -> Result<(), reprise_sdk::Error> {
    /// ctx.sleep(std::time::Duration::from_secs(30)).await;
    /// # Ok(()) }
    /// ```
    pub fn sleep(&self, duration: Duration) -> Timer {
        self.create_timer(self.current_time() + duration)
    }

    /// Waits for the event `name` for at most `timeout`: `Some(payload)` if
    /// it came first (its timer is then cancelled), `None` if the time ran
    /// out. An event that arrives after the timeout stays buffered for the
    /// next wait.
    ///
    /// ```no_run
    /// # async fn example(ctx: reprise_sdk::OrchestrationContext) -> Result<(), reprise_sdk::Error> {
    /// use std::time::Duration;
    /// match ctx.wait_for_event_with_timeout::<bool>("approval", Duration::from_secs(3600)).await? {
    ///     Some(approved) => println!("approved: {approved}"),
    ///     None => println!("nobody answered within the hour"),
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn wait_for_event_with_timeout<T: DeserializeOwned>(
        &self,
        name: &str,
        timeout: Duration,
    ) -> Result<Option<T>, Error> {
        let event = self.wait_for_event::<T>(name);
        let deadline = self.sleep(timeout);
        match when_either(event, deadline).await {
            Either::Left(payload) => payload.map(Some),
            Either::Right(()) => Ok(None),
        }
    }

    /// Calls the activity `name` with `input`; resolves to its output
    /// decoded as `T`, or to an error if it failed (returned an error,
    /// trapped, or timed out).
    ///
    /// ```no_run
    /// # async fn example(ctx: reprise_sdk::OrchestrationContext) -> Result<(), reprise_sdk::Error> {
    /// let greeting: String = ctx.call_activity("SayHello", "Tokyo").await?;
    /// # Ok(()) }
    /// ```
    pub fn call_activity<T: DeserializeOwned>(
        &self,
        name: &str,
        input: impl Serialize,
    ) -> TaskCall<T> {
        self.schedule_activity(name, input, 1)
    }

    /// Schedules attempt `attempt` (1-based) of a call of activity `name`.
    fn schedule_activity<T>(&self, name: &str, input: impl Serialize, attempt: u32) -> TaskCall<T> {
        self.start_task(format!("activity '{name}'"), input, |id, input| {
            Action::ScheduleActivity(ScheduleActivity {
                id,
                name: name.to_owned(),
                input,
                attempt,
            })
        })
    }

    /// Starts the orchestrator `name` as a child instance and waits for its
    /// result: its output decoded as `T`, or an error if it failed or was
    /// terminated. `instance_id` names the child (for a singleton child);
    /// by default the host derives one from this instance's ID.
    ///
    /// ```no_run
    /// # async fn example(ctx: reprise_sdk::OrchestrationContext) -> Result<(), reprise_sdk::Error> {
    /// let total: u64 = ctx.call_sub_orchestrator("FanOutFanIn", None, 10).await?;
    /// # Ok(()) }
    /// ```
    pub fn call_sub_orchestrator<T: DeserializeOwned>(
        &self,
        name: &str,
        instance_id: Option<&str>,
        input: impl Serialize,
    ) -> TaskCall<T> {
        self.start_task(format!("sub-orchestration '{name}'"), input, |id, input| {
            Action::StartSubOrchestration(StartSubOrchestration {
                id,
                name: name.to_owned(),
                instance_id: instance_id.map(str::to_owned),
                input,
            })
        })
    }

    /// Schedules a task whose action `action` builds from its ID and JSON input.
    pub(crate) fn start_task<T>(
        &self,
        what: String,
        input: impl Serialize,
        action: impl FnOnce(u64, String) -> Action,
    ) -> TaskCall<T> {
        let input = match serde_json::to_string(&input) {
            Ok(input) => input,
            Err(error) => return TaskCall::failed(Error::from(error), what),
        };
        let mut state = self.state.borrow_mut();
        let (id, slot) = state.schedule();
        state.actions.push(action(id, input));
        TaskCall::scheduled(Rc::clone(&self.state), id, slot, what)
    }

    /// Sends the event `name` to another instance, as raiseEvent would. Fire
    /// and forget: it is delivered when this episode commits, if the target
    /// exists and has not finished.
    ///
    /// ```no_run
    /// # fn example(ctx: reprise_sdk::OrchestrationContext) -> Result<(), reprise_sdk::Error> {
    /// ctx.send_event("my-counter", "operation", "incr")?;
    /// # Ok(()) }
    /// ```
    pub fn send_event(
        &self,
        instance_id: &str,
        name: &str,
        payload: impl Serialize,
    ) -> Result<(), Error> {
        let payload = serde_json::to_string(&payload)?;
        self.state
            .borrow_mut()
            .actions
            .push(Action::SendEvent(SendEvent {
                instance_id: instance_id.to_owned(),
                name: name.to_owned(),
                payload,
            }));
        Ok(())
    }

    /// Calls the activity `name`, retrying failures as `policy` says, with
    /// durable timers between attempts. The error of the last attempt is
    /// returned if all fail, or at once if it is not retryable
    /// ([`Error::is_retryable`]): trying again cannot help. Each attempt is
    /// a task of its own, which the activity sees as its
    /// [`attempt`](crate::ActivityContext::attempt).
    ///
    /// ```no_run
    /// # async fn example(ctx: reprise_sdk::OrchestrationContext) -> Result<(), reprise_sdk::Error> {
    /// use std::time::Duration;
    /// let policy = reprise_sdk::RetryPolicy::new(3, Duration::from_secs(5));
    /// let receipt: String = ctx.call_activity_with_retry("ChargeCard", 42, &policy).await?;
    /// # Ok(()) }
    /// ```
    pub async fn call_activity_with_retry<T: DeserializeOwned>(
        &self,
        name: &str,
        input: impl Serialize,
        policy: &RetryPolicy,
    ) -> Result<T, Error> {
        let input = serde_json::to_value(input)?;
        let attempts = policy.max_attempts.max(1);
        let mut attempt = 1;
        loop {
            match self.schedule_activity::<T>(name, &input, attempt).await {
                Ok(output) => return Ok(output),
                Err(error) if attempt >= attempts || !error.is_retryable() => {
                    let message = format!("{error} (attempt {attempt} of {attempts})");
                    return Err(error.with_message(message));
                }
                Err(_) => {
                    self.sleep(policy.delay_after(attempt)).await;
                    attempt += 1;
                }
            }
        }
    }

    /// Starts an instance of the orchestrator `name` on its own, fire and
    /// forget: no result comes back, and it is not a child (terminating
    /// this instance leaves it running). It starts when this episode
    /// commits; nothing happens if an instance with that ID exists.
    /// Returns the ID: `instance_id`, or by default a
    /// [`new_uuid`](Self::new_uuid), the same on every replay.
    ///
    /// ```no_run
    /// # fn example(ctx: reprise_sdk::OrchestrationContext) -> Result<(), reprise_sdk::Error> {
    /// let report = ctx.start_orchestration("WeeklyReport", None, "2026-W02")?;
    /// ctx.set_custom_status(format!("report started as {report}"))?;
    /// # Ok(()) }
    /// ```
    pub fn start_orchestration(
        &self,
        name: &str,
        instance_id: Option<&str>,
        input: impl Serialize,
    ) -> Result<String, Error> {
        let input = serde_json::to_string(&input)?;
        let instance_id = match instance_id {
            Some(instance_id) => instance_id.to_owned(),
            None => self.new_uuid().to_string(),
        };
        self.state
            .borrow_mut()
            .actions
            .push(Action::StartOrchestration(StartOrchestration {
                name: name.to_owned(),
                instance_id: instance_id.clone(),
                input,
            }));
        Ok(instance_id)
    }

    /// Ends this generation and starts a fresh one with `input` and an empty
    /// history, once the orchestrator function returns.
    ///
    /// Events delivered but not yet consumed are carried over to the next
    /// generation, so an eternal orchestration never loses one.
    ///
    /// ```no_run
    /// # async fn example(ctx: reprise_sdk::OrchestrationContext) -> Result<(), reprise_sdk::Error> {
    /// let count: i64 = ctx.input()?;
    /// ctx.continue_as_new(count + 1)?;
    /// Ok(())
    /// # }
    /// ```
    pub fn continue_as_new<T: Serialize>(&self, input: T) -> Result<(), Error> {
        let input = serde_json::to_string(&input)?;
        self.state.borrow_mut().continue_as_new = Some(input);
        Ok(())
    }

    /// Publishes `value` as the instance's `customStatus` in status queries.
    ///
    /// ```no_run
    /// # fn example(ctx: reprise_sdk::OrchestrationContext) -> Result<(), reprise_sdk::Error> {
    /// ctx.set_custom_status(serde_json::json!({ "stage": "waiting for approval" }))?;
    /// # Ok(()) }
    /// ```
    pub fn set_custom_status<T: Serialize>(&self, value: T) -> Result<(), Error> {
        let value = serde_json::to_string(&value)?;
        self.state
            .borrow_mut()
            .actions
            .push(Action::SetCustomStatus(value));
        Ok(())
    }
}

enum Wait {
    /// The event, until the future hands it out.
    Ready(Option<Arrived>),
    Pending(Rc<EventSlot>),
}

/// The future [`OrchestrationContext::wait_for_event`] returns.
///
/// Dropping it before it completes gives up the wait: the event goes to the
/// next waiter or stays buffered.
#[must_use = "an event wait does nothing unless awaited"]
pub struct EventFuture<T> {
    state: Rc<RefCell<State>>,
    name: String,
    wait: Wait,
    _payload: PhantomData<fn() -> T>,
}

impl<T: DeserializeOwned> Future for EventFuture<T> {
    type Output = Result<T, Error>;

    fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let arrived = match &mut this.wait {
            Wait::Ready(arrived) => arrived.take(),
            Wait::Pending(slot) => slot.arrived.borrow_mut().take(),
        };
        let Some(arrived) = arrived else {
            return Poll::Pending;
        };
        this.wait = Wait::Ready(None);
        Poll::Ready(
            crate::payload::decode(&arrived.event.payload).map_err(|error| {
                Error::new(format!(
                    "payload of event '{}' does not have the expected shape: {error}",
                    this.name
                ))
            }),
        )
    }
}

impl<T> Drop for EventFuture<T> {
    fn drop(&mut self) {
        let mut state = self.state.borrow_mut();
        let unconsumed = match &mut self.wait {
            Wait::Ready(arrived) => arrived.take(),
            Wait::Pending(slot) => {
                state.waiters.retain(|waiting| !Rc::ptr_eq(waiting, slot));
                slot.arrived.borrow_mut().take()
            }
        };
        // Received but never looked at: it goes to the next waiter for its
        // name, or back into the buffer in its arrival order.
        if let Some(arrived) = unconsumed
            && state.hand_over(arrived)
        {
            state.handed_over = true;
        }
    }
}

impl<T> std::fmt::Debug for EventFuture<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventFuture")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}
