//! Episodes as the host runs them: the orchestrator is stepped with
//! `orchestrator-started(now)` and everything queued for it, and its actions
//! are answered: activities and sub-orchestrations by the test's scripts
//! (their results queued for a later episode), timers put on the virtual
//! clock, the rest recorded.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;

use crate::execution::{Executor, RunningOrchestrator};
use crate::logging::LogSink;
use crate::wire::{
    Action, CallEntity, ContinueAsNew, CreateTimer, ExecutionStarted, Failure, HistoryEvent,
    LockEntities, ScheduleActivity, SendEvent, SignalEntity, StartOrchestration,
    StartSubOrchestration, TaskCompleted, TaskFailed,
};
use crate::{ActivityContext, EntityId, Error, OrchestrationContext};

use super::clock::{Due, to_time};
use super::records::{
    ActivityCall, CreatedTimer, EntityCall, EntitySignal, RaisedEvent, SentEvent,
    StartedOrchestration, SubOrchestrationCall,
};
use super::{OrchestrationTest, Outcome, parse};

/// What the next episode delivers, in arrival order.
pub(super) type Inbox = VecDeque<HistoryEvent>;

/// The orchestrator function under test, and the instance it runs as.
pub(super) struct Orchestrator {
    pub(super) name: String,
    pub(super) instance_id: String,
    pub(super) start: Box<dyn Fn(OrchestrationContext) -> RunningOrchestrator>,
    /// What it logged, across generations.
    pub(super) logs: Rc<RefCell<Vec<String>>>,
}

impl Orchestrator {
    fn execute(&self, input: &str) -> Executor {
        let mut executor = Executor::with_start(
            self.name.clone(),
            self.instance_id.clone(),
            input.to_owned(),
            |_, context| Ok((self.start)(context)),
        );
        let logs = Rc::clone(&self.logs);
        executor.set_log_sink(LogSink::new(move |line| {
            logs.borrow_mut().push(line.to_owned());
        }));
        executor
    }
}

/// One generation of the instance.
pub(super) struct Generation {
    /// 0 for the first, one more at each continue-as-new.
    pub(super) number: u32,
    pub(super) input: String,
    /// `None` until its first episode.
    executor: Option<Executor>,
}

impl Generation {
    pub(super) fn new(number: u32, input: String) -> Generation {
        Generation {
            number,
            input,
            executor: None,
        }
    }

    pub(super) fn has_started(&self) -> bool {
        self.executor.is_some()
    }

    /// Steps the generation's execution, created at its first episode. The
    /// execution stays warm, so nothing is ever replayed.
    fn step(&mut self, orchestrator: &Orchestrator, events: Vec<HistoryEvent>) -> Vec<Action> {
        let executor = self
            .executor
            .get_or_insert_with(|| orchestrator.execute(&self.input));
        executor.step(events, false)
    }
}

/// What the continue-as-new action does in a test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ContinueAsNewPolicy {
    /// End the test's run with [`Outcome::ContinuedAsNew`].
    Stop,
    /// Start the next generation, as the host does.
    Follow,
}

impl OrchestrationTest {
    /// Runs episodes until the orchestrator waits for something only the
    /// test brings (an event, the clock), or finishes.
    ///
    /// # Panics
    ///
    /// After `max_episodes` episodes in a row: the orchestrator keeps itself
    /// busy (activities, continue-as-new, due timers) and would never stop.
    pub(super) fn drive(&mut self) {
        let mut episodes = 0;
        while self.has_work() {
            episodes += 1;
            assert!(
                episodes <= self.max_episodes,
                "the orchestrator ran {max} episodes in a row without waiting for the test \
                 (an event or the clock): it keeps answering itself (activities, \
                 sub-orchestrations, continue-as-new, due timers) and may never stop; if it \
                 really needs more, raise the limit with `OrchestrationTest::max_episodes`",
                max = self.max_episodes,
            );
            self.run_episode();
        }
    }

    /// Whether an episode would deliver anything: the start, or something queued.
    pub(super) fn has_work(&self) -> bool {
        self.outcome.is_running() && (!self.generation.has_started() || !self.inbox.is_empty())
    }

    /// One episode: steps the orchestrator with what is queued and answers
    /// its actions.
    pub(super) fn run_episode(&mut self) {
        let events = self.episode_events();
        let actions = self.generation.step(&self.orchestrator, events);
        // The host drops the timers and activities of a generation that
        // ends in the episode that created them.
        let generation_ends = actions.last().is_some_and(ends_generation);
        for action in actions {
            self.log.actions.push(action.clone());
            self.answer(action, generation_ends);
        }
        self.deliver_due();
    }

    /// The start if the generation has not started, then `orchestrator-started(now)`
    /// and everything queued.
    fn episode_events(&mut self) -> Vec<HistoryEvent> {
        let mut events = Vec::new();
        if !self.generation.has_started() {
            events.push(HistoryEvent::ExecutionStarted(ExecutionStarted {
                name: self.orchestrator.name.clone(),
                instance_id: self.orchestrator.instance_id.clone(),
                input: self.generation.input.clone(),
            }));
        }
        events.push(HistoryEvent::OrchestratorStarted(self.clock.now_ms()));
        events.extend(self.inbox.drain(..));
        events
    }

    /// Queues what the clock has brought due (timers of the running
    /// generation, scheduled events) for the next episode. Events due after
    /// the orchestration finished are refused, as the host refuses them.
    pub(super) fn deliver_due(&mut self) {
        for due in self.clock.take_due() {
            if !self.outcome.is_running() {
                continue;
            }
            self.inbox.push_back(match due {
                Due::Timer(id) => HistoryEvent::TimerFired(id),
                Due::Event(event) => HistoryEvent::EventRaised(event),
            });
        }
    }

    fn answer(&mut self, action: Action, generation_ends: bool) {
        match action {
            Action::SetCustomStatus(value) => self.log.custom_status = Some(parse(&value)),
            Action::CreateTimer(timer) => self.create_timer(timer, generation_ends),
            Action::ScheduleActivity(activity) => {
                self.schedule_activity(activity, generation_ends);
            }
            Action::StartSubOrchestration(child) => {
                self.start_sub_orchestration(child, generation_ends);
            }
            Action::SendEvent(event) => self.send_event(event),
            Action::CancelTimer(id) => self.clock.cancel_timer(id),
            Action::StartOrchestration(start) => self.start_orchestration(start),
            Action::SignalEntity(signal) => self.signal_entity(signal),
            Action::CallEntity(call) => self.call_entity(call, generation_ends),
            Action::LockEntities(lock) => self.lock_entities(lock, generation_ends),
            // The test kit runs one instance: no one else waits for the entities.
            Action::UnlockEntities => {}
            Action::Complete(output) => self.finish(Outcome::Completed(parse(&output))),
            Action::Fail(failure) => self.finish(Outcome::Failed(Error::from_failure(failure))),
            Action::ContinueAsNew(next) => self.continue_as_new(next),
        }
    }

    /// The context of task `id` of the running generation, attempt `attempt`.
    fn activity_context(&self, id: u64, attempt: u32) -> ActivityContext {
        let instance_id = &self.orchestrator.instance_id;
        let key = format!("{instance_id}/{}/{id}", self.generation.number);
        ActivityContext::new(instance_id.clone(), id, key, attempt)
    }

    fn create_timer(&mut self, timer: CreateTimer, generation_ends: bool) {
        self.log.timers.push(CreatedTimer {
            created_at: to_time(self.clock.now_ms()),
            fire_at: to_time(timer.fire_at),
        });
        if !generation_ends {
            self.clock.schedule(timer.fire_at, Due::Timer(timer.id));
        }
    }

    fn schedule_activity(&mut self, activity: ScheduleActivity, generation_ends: bool) {
        let result = if generation_ends {
            None
        } else {
            let context = self.activity_context(activity.id, activity.attempt);
            let result = self
                .activities
                .answer(&activity.name, &activity.input, context);
            self.inbox
                .push_back(activity_done(activity.id, result.clone()));
            Some(result)
        };
        self.log.activities.push(ActivityCall {
            name: activity.name,
            input: parse(&activity.input),
            attempt: activity.attempt,
            result: result.map(parse_result),
        });
    }

    fn start_sub_orchestration(&mut self, child: StartSubOrchestration, generation_ends: bool) {
        let context = self.activity_context(child.id, 1);
        let result = self
            .sub_orchestrations
            .answer(&child.name, &child.input, context);
        if !generation_ends {
            self.inbox
                .push_back(sub_orchestration_done(child.id, result.clone()));
        }
        let instance_id = child.instance_id.unwrap_or_else(|| {
            format!(
                "{}:{}:{}",
                self.orchestrator.instance_id, self.generation.number, child.id
            )
        });
        self.log.sub_orchestrations.push(SubOrchestrationCall {
            name: child.name,
            instance_id,
            input: parse(&child.input),
            result: parse_result(result),
        });
    }

    fn send_event(&mut self, event: SendEvent) {
        self.log.sent_events.push(SentEvent {
            instance_id: event.instance_id,
            name: event.name,
            payload: parse(&event.payload),
        });
    }

    fn start_orchestration(&mut self, start: StartOrchestration) {
        self.log.started_orchestrations.push(StartedOrchestration {
            name: start.name,
            instance_id: start.instance_id,
            input: parse(&start.input),
        });
    }

    fn signal_entity(&mut self, signal: SignalEntity) {
        let target = EntityId::from_wire(signal.target);
        self.entities
            .signal(&target, &signal.operation, &signal.input);
        self.log.signals.push(EntitySignal {
            target,
            operation: signal.operation,
            input: parse(&signal.input),
        });
    }

    /// Applies the call to the entity at once (the host sends the
    /// operation even if the generation ends), its result delivered in the
    /// next episode.
    fn call_entity(&mut self, call: CallEntity, generation_ends: bool) {
        let target = EntityId::from_wire(call.target);
        let Some(result) = self.entities.apply(&target, &call.operation, &call.input) else {
            panic!(
                "the orchestrator called operation '{operation}' of entity '{target}' with \
                 input {input}, but the test registered no entity named '{name}' (registered: \
                 {registered:?}); register it with `entity`",
                operation = call.operation,
                input = call.input,
                name = target.name(),
                registered = self.entities.names(),
            );
        };
        if !generation_ends {
            self.inbox
                .push_back(entity_call_done(call.id, result.clone()));
        }
        self.log.entity_calls.push(EntityCall {
            target,
            operation: call.operation,
            input: parse(&call.input),
            result: parse_result(result),
        });
    }

    /// Grants the lock in the next episode: in a test, no one else holds
    /// entities.
    fn lock_entities(&mut self, lock: LockEntities, generation_ends: bool) {
        if !generation_ends {
            self.inbox.push_back(HistoryEvent::EntitiesLocked(lock.id));
        }
        let targets = lock.targets.into_iter().map(EntityId::from_wire).collect();
        self.log.lock_requests.push(targets);
    }

    fn finish(&mut self, outcome: Outcome) {
        self.outcome = outcome;
        self.clock.drop_timers();
    }

    fn continue_as_new(&mut self, next: ContinueAsNew) {
        self.clock.drop_timers();
        match self.continue_as_new_policy {
            ContinueAsNewPolicy::Stop => {
                self.outcome = Outcome::ContinuedAsNew {
                    input: parse(&next.input),
                    carried_over_events: next
                        .carried_over_events
                        .into_iter()
                        .map(|event| RaisedEvent {
                            name: event.name,
                            payload: parse(&event.payload),
                        })
                        .collect(),
                };
            }
            ContinueAsNewPolicy::Follow => {
                self.generation = Generation::new(self.generation.number + 1, next.input);
                // Carried-over events come first, in the order they arrived.
                let carried = next.carried_over_events.into_iter().rev();
                for event in carried {
                    self.inbox.push_front(HistoryEvent::EventRaised(event));
                }
            }
        }
    }
}

fn ends_generation(action: &Action) -> bool {
    matches!(
        action,
        Action::Complete(_) | Action::Fail(_) | Action::ContinueAsNew(_)
    )
}

fn activity_done(id: u64, result: Result<String, Failure>) -> HistoryEvent {
    match result {
        Ok(output) => HistoryEvent::ActivityCompleted(TaskCompleted { id, output }),
        Err(failure) => HistoryEvent::ActivityFailed(TaskFailed { id, failure }),
    }
}

fn sub_orchestration_done(id: u64, result: Result<String, Failure>) -> HistoryEvent {
    match result {
        Ok(output) => HistoryEvent::SubOrchestrationCompleted(TaskCompleted { id, output }),
        Err(failure) => HistoryEvent::SubOrchestrationFailed(TaskFailed { id, failure }),
    }
}

fn entity_call_done(id: u64, result: Result<String, Failure>) -> HistoryEvent {
    match result {
        Ok(output) => HistoryEvent::EntityCallCompleted(TaskCompleted { id, output }),
        Err(failure) => HistoryEvent::EntityCallFailed(TaskFailed { id, failure }),
    }
}

/// A result as the records show it: the output as JSON, or the message.
fn parse_result(result: Result<String, Failure>) -> Result<serde_json::Value, String> {
    result
        .map(|output| parse(&output))
        .map_err(|failure| failure.message)
}
