//! Test orchestrators natively, with `cargo test`: no wasm, no host.
//!
//! [`OrchestrationTest`] runs an orchestrator function the way the host
//! does, episode by episode, while the test plays the rest of the world:
//!
//! - **Activities and sub-orchestrations** are answered by the test, per
//!   name: the real activity function called in-process
//!   ([`activity`](OrchestrationTest::activity)), a closure, a fixed output
//!   or a fixed error. Their results arrive in a later episode, as on the host.
//! - **Entities** are run in-process: the real entity function, or a
//!   closure, registered per name ([`entity`](OrchestrationTest::entity)),
//!   on states kept in memory. Calls are answered in a later episode,
//!   signals applied in the order sent, and locks granted at the next
//!   episode. [`EntityTest`] tests one entity function on its own.
//! - **External events** are raised by the test when the orchestrator waits
//!   ([`raise_event`](OrchestrationTest::raise_event)), at a virtual time
//!   ([`raise_event_after`](OrchestrationTest::raise_event_after)), or queued
//!   to arrive together with whatever else is on its way
//!   ([`queue_event`](OrchestrationTest::queue_event)).
//! - **Time** is a virtual clock that moves only when the test
//!   [`advance`](OrchestrationTest::advance)s it; it starts at
//!   2026-01-01T00:00:00Z (or [`start_time`](OrchestrationTest::start_time)).
//!   Durable timers fire when the clock reaches them.
//!
//! Each driving method runs episodes until the orchestrator waits for
//! something only the test can bring (an event, or the clock) or finishes,
//! and returns the [`Outcome`]. Then assert on it, on the
//! [custom status](OrchestrationTest::custom_status) and on what the
//! orchestrator did: [`activities`](OrchestrationTest::activities),
//! [`timers`](OrchestrationTest::timers),
//! [`sub_orchestrations`](OrchestrationTest::sub_orchestrations),
//! [`sent_events`](OrchestrationTest::sent_events),
//! [`signals`](OrchestrationTest::signals),
//! [`entity_calls`](OrchestrationTest::entity_calls), or every
//! [action](OrchestrationTest::actions) in order; what it
//! [logged](OrchestrationTest::logs) too.
//!
//! ```
//! use std::time::Duration;
//!
//! use reprise_sdk::testing::{OrchestrationTest, Outcome};
//! use reprise_sdk::{Error, OrchestrationContext};
//!
//! /// Greets each city, then waits up to an hour for the greetings to be approved.
//! async fn greet(ctx: OrchestrationContext) -> Result<Vec<String>, Error> {
//!     let cities: Vec<String> = ctx.input()?;
//!     let mut greetings = Vec::new();
//!     for city in cities {
//!         greetings.push(ctx.call_activity("SayHello", city).await?);
//!     }
//!     ctx.set_custom_status("awaiting approval")?;
//!     let approval = ctx.wait_for_event_with_timeout::<bool>("approval", Duration::from_secs(3600));
//!     match approval.await? {
//!         Some(true) => Ok(greetings),
//!         Some(false) => Err(Error::new("rejected")),
//!         None => Err(Error::new("nobody approved within the hour")),
//!     }
//! }
//!
//! fn say_hello(city: String) -> Result<String, Error> {
//!     Ok(format!("Hello {city}!"))
//! }
//!
//! // Approved in time: the real activity ran for each city, in order.
//! let mut test = OrchestrationTest::new(greet)
//!     .input(["Tokyo", "London"])
//!     .activity("SayHello", say_hello);
//! assert_eq!(test.run(), Outcome::Running);
//! assert_eq!(test.custom_status::<String>().as_deref(), Some("awaiting approval"));
//! let outcome = test.raise_event("approval", true);
//! assert_eq!(outcome.output::<Vec<String>>().unwrap(), ["Hello Tokyo!", "Hello London!"]);
//! assert_eq!(test.activities().len(), 2);
//!
//! // Nobody answers: the durable timer fires when the clock passes it.
//! let mut test = OrchestrationTest::new(greet)
//!     .input(["Paris"])
//!     .activity_result("SayHello", "Bonjour !");
//! test.advance(Duration::from_secs(3599));
//! assert!(test.outcome().is_running());
//! let outcome = test.advance(Duration::from_secs(1));
//! assert_eq!(outcome.error(), Some("nobody approved within the hour"));
//! ```
//!
//! Episodes follow the host's rules. The first episode delivers the start
//! (with any events queued before it); the results of activities and
//! sub-orchestrations, fired timers and events are delivered in later
//! episodes, in the order they arrived, each episode at the clock's current
//! time (answers take no virtual time). Completion and failure are final;
//! continue-as-new ends the generation, and the test stops there with
//! [`Outcome::ContinuedAsNew`] unless told to
//! [follow it](OrchestrationTest::follow_continue_as_new). The timers of an
//! ended generation never fire, and activities it scheduled in its last
//! episode never run.
//!
//! Misuse is reported by a panic that says what happened and what to do:
//! an activity, sub-orchestration or entity called with nothing scripted for its
//! name, an event raised after the orchestration ended, a clock moved back,
//! or an orchestrator that never waits for the test (more than
//! [`max_episodes`](OrchestrationTest::max_episodes) episodes in a row).

mod clock;
mod entities;
mod entity_test;
mod episode;
mod outcome;
mod records;
mod script;

use std::future::Future;
use std::time::{Duration, SystemTime};

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::execution::run;
use crate::wire::{Action, EventRaised, HistoryEvent};
use crate::{EntityContext, EntityId, Error, OrchestrationContext};

use clock::{Clock, DEFAULT_START_MS, Due, to_millis, to_time};
use entities::{Entities, entity_function};
use episode::{ContinueAsNewPolicy, Generation, Inbox, Orchestrator};
use records::Log;
use script::{CallKind, Script};

pub use entity_test::EntityTest;
pub use outcome::Outcome;
pub use records::{
    ActivityCall, CreatedTimer, EntityCall, EntitySignal, RaisedEvent, SentEvent,
    StartedOrchestration, SubOrchestrationCall,
};

/// Episodes in a row without waiting for the test, before a test is stopped.
const DEFAULT_MAX_EPISODES: usize = 1_000;

/// One instance of an orchestrator, run natively against what the test scripts.
///
/// Build it with [`new`](Self::new) and the builder methods (input,
/// scripted activities and sub-orchestrations, options), then drive it with
/// [`run`](Self::run), [`raise_event`](Self::raise_event),
/// [`advance`](Self::advance) and friends; each returns the [`Outcome`].
/// See the [module documentation](self) for an example.
pub struct OrchestrationTest {
    orchestrator: Orchestrator,
    activities: Script,
    sub_orchestrations: Script,
    entities: Entities,
    continue_as_new_policy: ContinueAsNewPolicy,
    max_episodes: usize,
    clock: Clock,
    generation: Generation,
    inbox: Inbox,
    outcome: Outcome,
    log: Log,
}

/// Building: what the orchestrator starts with and how the world answers.
impl OrchestrationTest {
    /// A test of `orchestrator`, an `async fn(OrchestrationContext) ->
    /// Result<T, E>` like the ones registered with
    /// [`export_orchestrators!`](crate::export_orchestrators). It runs as
    /// instance `"test-instance"` of an orchestrator named
    /// `"TestOrchestrator"`, with input `null`, until told otherwise.
    pub fn new<F, Fut, T, E>(orchestrator: F) -> OrchestrationTest
    where
        F: Fn(OrchestrationContext) -> Fut + 'static,
        Fut: Future<Output = Result<T, E>> + 'static,
        T: Serialize,
        E: std::fmt::Display + 'static,
    {
        OrchestrationTest {
            orchestrator: Orchestrator {
                name: "TestOrchestrator".to_owned(),
                instance_id: "test-instance".to_owned(),
                start: Box::new(move |context| run(&orchestrator, context)),
                logs: Default::default(),
            },
            activities: Script::new(CallKind::Activity),
            sub_orchestrations: Script::new(CallKind::SubOrchestration),
            entities: Entities::default(),
            continue_as_new_policy: ContinueAsNewPolicy::Stop,
            max_episodes: DEFAULT_MAX_EPISODES,
            clock: Clock::starting_at(DEFAULT_START_MS),
            generation: Generation::new(0, "null".to_owned()),
            inbox: Inbox::new(),
            outcome: Outcome::Running,
            log: Log::default(),
        }
    }

    /// The input, serialized to JSON, as a start request's body would be.
    pub fn input(mut self, input: impl Serialize) -> Self {
        self.generation.input = to_json(input, "input");
        self
    }

    /// The name the orchestrator sees in [`OrchestrationContext::name`].
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.orchestrator.name = name.into();
        self
    }

    /// The ID the orchestrator sees in [`OrchestrationContext::instance_id`].
    pub fn instance_id(mut self, instance_id: impl Into<String>) -> Self {
        self.orchestrator.instance_id = instance_id.into();
        self
    }

    /// When the virtual clock starts; 2026-01-01T00:00:00Z by default.
    ///
    /// # Panics
    ///
    /// If `start` is before the Unix epoch.
    pub fn start_time(mut self, start: SystemTime) -> Self {
        self.clock = Clock::starting_at(to_millis(start));
        self
    }

    /// Answers calls to activity `name` with `function`, called in-process
    /// as the host calls an activity: its input decoded from JSON (a
    /// mismatch fails the call, as on the host), its output encoded, its
    /// error a failure (an [`Error`] keeps its kind and retryability), and
    /// its [`ActivityContext`](crate::ActivityContext) current while it
    /// runs (idempotency key `{instance}/{generation}/{task}`). Pass the
    /// real activity, or a closure; an `FnMut` can answer differently each
    /// time (fail, then succeed).
    ///
    /// ```
    /// # use reprise_sdk::testing::OrchestrationTest;
    /// # async fn orchestrator(ctx: reprise_sdk::OrchestrationContext) -> Result<(), reprise_sdk::Error> { Ok(()) }
    /// let mut attempts = 0;
    /// let test = OrchestrationTest::new(orchestrator).activity("Flaky", move |n: u32| {
    ///     attempts += 1;
    ///     if attempts < 3 { Err(format!("attempt {attempts} failed")) } else { Ok(n * 2) }
    /// });
    /// ```
    pub fn activity<F, I, O, E>(mut self, name: &str, function: F) -> Self
    where
        F: FnMut(I) -> Result<O, E> + 'static,
        I: DeserializeOwned,
        O: Serialize,
        E: std::fmt::Display + 'static,
    {
        self.activities.function(name, function);
        self
    }

    /// Answers every call to activity `name` with `output`.
    pub fn activity_result(mut self, name: &str, output: impl Serialize) -> Self {
        self.activities.output(name, output);
        self
    }

    /// Fails every call to activity `name` with the error `message`.
    pub fn activity_error(mut self, name: &str, message: impl Into<String>) -> Self {
        self.activities.error(name, Error::new(message));
        self
    }

    /// Fails every call to activity `name` with `error`, whose kind and
    /// retryability the orchestrator sees (e.g. kind `"timeout"`, as the
    /// host reports an activity that ran out of time).
    pub fn activity_failure(mut self, name: &str, error: Error) -> Self {
        self.activities.error(name, error);
        self
    }

    /// Answers sub-orchestrations of orchestrator `name` with `function` of
    /// their input: `Ok` completes the child with that output, `Err` fails it.
    pub fn sub_orchestration<F, I, O, E>(mut self, name: &str, function: F) -> Self
    where
        F: FnMut(I) -> Result<O, E> + 'static,
        I: DeserializeOwned,
        O: Serialize,
        E: std::fmt::Display + 'static,
    {
        self.sub_orchestrations.function(name, function);
        self
    }

    /// Completes every sub-orchestration of orchestrator `name` with `output`.
    pub fn sub_orchestration_result(mut self, name: &str, output: impl Serialize) -> Self {
        self.sub_orchestrations.output(name, output);
        self
    }

    /// Fails every sub-orchestration of orchestrator `name` with `message`.
    pub fn sub_orchestration_error(mut self, name: &str, message: impl Into<String>) -> Self {
        self.sub_orchestrations.error(name, Error::new(message));
        self
    }

    /// Fails every sub-orchestration of orchestrator `name` with `error`.
    pub fn sub_orchestration_failure(mut self, name: &str, error: Error) -> Self {
        self.sub_orchestrations.error(name, error);
        self
    }

    /// Runs entities named `name` (case-insensitive) with `function`, an
    /// entity function like the ones registered with
    /// [`export_entities!`](crate::export_entities): the real one, or a
    /// closure that stubs it. Each entity's state is kept in memory
    /// (seed it with [`entity_state`](Self::entity_state)); calls,
    /// signals (also those entities send each other) apply to it in the
    /// order sent. Signals to entities with no function are only recorded.
    ///
    /// ```
    /// # use reprise_sdk::testing::OrchestrationTest;
    /// # use reprise_sdk::{EntityContext, EntityId, Error, OrchestrationContext};
    /// async fn reads(ctx: OrchestrationContext) -> Result<i64, Error> {
    ///     ctx.call_entity(&EntityId::new("Account", "alice"), "balance", ()).await
    /// }
    /// let mut test = OrchestrationTest::new(reads)
    ///     .entity("Account", |ctx: &mut EntityContext| ctx.state_or_default::<i64>())
    ///     .entity_state(&EntityId::new("Account", "alice"), 30);
    /// assert_eq!(test.run().output(), Some(30));
    /// ```
    pub fn entity<F, T, E>(mut self, name: &str, function: F) -> Self
    where
        F: FnMut(&mut EntityContext) -> Result<T, E> + 'static,
        T: Serialize,
        E: std::fmt::Display + 'static,
    {
        self.entities.register(name, entity_function(function));
        self
    }

    /// Sets the state of entity `id` before the orchestration runs.
    pub fn entity_state(mut self, id: &EntityId, state: impl Serialize) -> Self {
        let state = to_json(state, &format!("state of entity '{id}'"));
        self.entities.set_state(id.clone(), state);
        self
    }

    /// Follows continue-as-new into the next generation, as the host does,
    /// instead of stopping with [`Outcome::ContinuedAsNew`] (the default,
    /// which tests one generation). The next generation starts at once, in
    /// the same virtual instant, with the carried-over events first.
    pub fn follow_continue_as_new(mut self) -> Self {
        self.continue_as_new_policy = ContinueAsNewPolicy::Follow;
        self
    }

    /// How many episodes may run in a row without the orchestrator waiting
    /// for the test before the test panics; 1000 by default.
    pub fn max_episodes(mut self, max_episodes: usize) -> Self {
        self.max_episodes = max_episodes;
        self
    }
}

/// Driving: the methods that return an [`Outcome`] start the orchestration
/// if it has not started, run episodes until it waits for the test or ends,
/// and return where it stands.
impl OrchestrationTest {
    /// Runs until the orchestrator waits for an event or the clock, or ends.
    ///
    /// # Panics
    ///
    /// If the orchestrator calls an activity or sub-orchestration the test
    /// scripted nothing for, or never waits (see [`max_episodes`](Self::max_episodes)).
    pub fn run(&mut self) -> Outcome {
        self.drive();
        self.outcome()
    }

    /// Runs a single episode: the start if the orchestration has not
    /// started, else one delivering everything queued (the results of the
    /// last episode's calls, events from [`queue_event`](Self::queue_event),
    /// fired timers). Does nothing if nothing is queued. With
    /// `queue_event`, it lets an event arrive while results are on their way.
    pub fn step(&mut self) -> Outcome {
        if self.has_work() {
            self.run_episode();
        }
        self.outcome()
    }

    /// Raises the external event `name` with `payload` (as JSON) and runs.
    ///
    /// # Panics
    ///
    /// If the orchestration has ended: the host refuses events for a
    /// finished instance.
    pub fn raise_event(&mut self, name: &str, payload: impl Serialize) -> Outcome {
        self.queue_event(name, payload);
        self.run()
    }

    /// Queues the external event `name` for the next episode without
    /// running it. Queued before the start, it arrives with the start.
    ///
    /// # Panics
    ///
    /// If the orchestration has ended.
    pub fn queue_event(&mut self, name: &str, payload: impl Serialize) {
        assert!(
            self.outcome.is_running(),
            "cannot raise event '{name}': the orchestration has ended ({}); the host refuses \
             events for a finished instance",
            self.outcome,
        );
        let payload = to_json(payload, &format!("payload of event '{name}'"));
        self.inbox.push_back(HistoryEvent::EventRaised(EventRaised {
            name: name.to_owned(),
            payload,
        }));
    }

    /// Raises the event `name` once the clock has moved `delay` past now
    /// (during a later [`advance`](Self::advance)), in order with the timers
    /// due by then. If the orchestration has ended by then, the event is
    /// refused (dropped), as the host would refuse it.
    pub fn raise_event_after(&mut self, delay: Duration, name: &str, payload: impl Serialize) {
        let payload = to_json(payload, &format!("payload of event '{name}'"));
        let at = self.clock.now_ms() + millis_in(delay);
        let event = EventRaised {
            name: name.to_owned(),
            payload,
        };
        self.clock.schedule(at, Due::Event(event));
    }

    /// Moves the clock forward by `duration`; see [`advance_to`](Self::advance_to).
    pub fn advance(&mut self, duration: Duration) -> Outcome {
        let target = self.clock.now_ms() + millis_in(duration);
        self.advance_to(to_time(target))
    }

    /// Moves the clock forward to `time`, stopping at each timer or
    /// scheduled event due on the way: the clock reads its due time while
    /// it is delivered, and the orchestrator runs until it waits again.
    ///
    /// # Panics
    ///
    /// If `time` is before [`now`](Self::now).
    pub fn advance_to(&mut self, time: SystemTime) -> Outcome {
        let target = to_millis(time);
        let now = self.clock.now_ms();
        assert!(
            target >= now,
            "the virtual clock cannot go back: `advance_to` was given a time {} ms before now",
            now - target,
        );
        self.drive();
        while let Some(due) = self.clock.next_due_ms().filter(|due| *due <= target) {
            self.clock.set_now(due.max(self.clock.now_ms()));
            self.deliver_due();
            self.drive();
        }
        self.clock.set_now(target);
        self.outcome()
    }
}

/// Inspecting: where the orchestration stands and what it did.
impl OrchestrationTest {
    /// Where the orchestration stands now.
    pub fn outcome(&self) -> Outcome {
        self.outcome.clone()
    }

    /// The virtual "now".
    pub fn now(&self) -> SystemTime {
        to_time(self.clock.now_ms())
    }

    /// When the earliest pending durable timer fires, if any.
    pub fn next_timer(&self) -> Option<SystemTime> {
        self.clock.next_timer_ms().map(to_time)
    }

    /// The latest custom status, decoded as `T`; `None` if none was set.
    ///
    /// # Panics
    ///
    /// If the custom status does not decode as `T`.
    pub fn custom_status<T: DeserializeOwned>(&self) -> Option<T> {
        let status = self.log.custom_status.as_ref()?;
        Some(decode(status, "custom status"))
    }

    /// Every action the orchestrator took, in order, across generations, as
    /// the host receives them.
    pub fn actions(&self) -> &[Action] {
        &self.log.actions
    }

    /// The activities the orchestrator scheduled, in order, with the answers.
    pub fn activities(&self) -> &[ActivityCall] {
        &self.log.activities
    }

    /// The sub-orchestrations the orchestrator started, in order, with the answers.
    pub fn sub_orchestrations(&self) -> &[SubOrchestrationCall] {
        &self.log.sub_orchestrations
    }

    /// The durable timers the orchestrator created, in order.
    pub fn timers(&self) -> &[CreatedTimer] {
        &self.log.timers
    }

    /// The events the orchestrator sent to other instances, in order.
    pub fn sent_events(&self) -> &[SentEvent] {
        &self.log.sent_events
    }

    /// The instances the orchestrator started on its own, in order.
    pub fn started_orchestrations(&self) -> &[StartedOrchestration] {
        &self.log.started_orchestrations
    }

    /// The operations the orchestrator signalled to entities, in order.
    pub fn signals(&self) -> &[EntitySignal] {
        &self.log.signals
    }

    /// The operations the orchestrator called on entities, in order, with
    /// their results.
    pub fn entity_calls(&self) -> &[EntityCall] {
        &self.log.entity_calls
    }

    /// The entities of each lock the orchestrator asked for, in order
    /// (sorted and deduplicated, as the orchestrator sends them).
    pub fn lock_requests(&self) -> &[Vec<EntityId>] {
        &self.log.lock_requests
    }

    /// The state of entity `id` decoded as `T`; `None` if it has none.
    ///
    /// # Panics
    ///
    /// If the state does not decode as `T`.
    pub fn entity_state_of<T: DeserializeOwned>(&self, id: &EntityId) -> Option<T> {
        let state = self.entities.state(id)?;
        Some(decode(&parse(state), &format!("state of entity '{id}'")))
    }

    /// The lines the orchestrator logged with
    /// [`OrchestrationContext::log`], in order, as `LEVEL message`.
    pub fn logs(&self) -> Vec<String> {
        self.orchestrator.logs.borrow().clone()
    }

    /// The running generation: 0 at first, one more at each followed
    /// continue-as-new.
    pub fn generation(&self) -> u32 {
        self.generation.number
    }

    /// The running generation's input, decoded as `T`.
    ///
    /// # Panics
    ///
    /// If it does not decode as `T`.
    pub fn generation_input<T: DeserializeOwned>(&self) -> T {
        decode(&parse(&self.generation.input), "generation's input")
    }
}

impl std::fmt::Debug for OrchestrationTest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OrchestrationTest")
            .field("name", &self.orchestrator.name)
            .field("instance_id", &self.orchestrator.instance_id)
            .field("generation", &self.generation.number)
            .field("now", &self.now())
            .field("outcome", &self.outcome)
            .finish_non_exhaustive()
    }
}

/// `value` as JSON text; panics naming `what` if it is not serializable.
fn to_json(value: impl Serialize, what: &str) -> String {
    serde_json::to_string(&value)
        .unwrap_or_else(|error| panic!("the test's {what} cannot be serialized to JSON: {error}"))
}

/// JSON text from the orchestrator or a scripted answer, as a value.
fn parse(json: &str) -> Value {
    serde_json::from_str(json)
        .unwrap_or_else(|error| panic!("expected JSON from the orchestrator, got {json}: {error}"))
}

/// `value` decoded as `T`; panics naming `what` if it does not fit.
fn decode<T: DeserializeOwned>(value: &Value, what: &str) -> T {
    T::deserialize(value).unwrap_or_else(|error| {
        panic!(
            "the {what} {value} does not decode as {}: {error}",
            std::any::type_name::<T>()
        )
    })
}

fn millis_in(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).expect("a duration in milliseconds fits in u64")
}

#[cfg(test)]
mod tests;
