//! One episode: apply an instance's queued messages and decide its new state.
//!
//! An episode reads the instance, its history and its inbox (one
//! [`WorkItem`]), rebuilds the orchestrator by replaying the history, feeds it
//! the new events, and turns its actions into one [`EpisodeCommit`]. Planning
//! is pure apart from running the guest; the caller commits.
//!
//! Replay feeds the recorded history back one recorded episode at a time
//! (each starts at an orchestrator-started entry), so the guest sees exactly
//! the calls it saw live, and checks that it takes the recorded actions again.

use std::collections::VecDeque;
use std::time::Instant;

use crate::entity::EntityId;
use crate::model::{
    Failure, HistoryEntry, Instance, InstanceId, Message, Millis, ParentTask, QueuedMessage,
    RuntimeStatus, Sender,
};
use crate::runtime::{GuestError, GuestExecution, Runtime, wire};
use crate::store::{
    ActivityLease, EpisodeCommit, HistoryChange, NewInstance, ScheduledActivity, WorkItem,
};

use super::entity_calls::{self, EntityCalls};
use super::warm::WarmExecution;
use crate::metrics::{EpisodeReport, Execution, FailureKind};
use crate::traces::InstanceTrace;

/// Consecutive generations that consume no event before an orchestrator is
/// declared to be looping through continue-as-new forever.
const MAX_IDLE_GENERATIONS: usize = 10_000;

/// Bytes a failure's kind may have: it is a word a program matches, stored
/// with every failure, so a guest may not make it a payload.
const MAX_FAILURE_KIND_BYTES: usize = 256;

/// What one step of an orchestrator may produce. A step beyond them fails
/// its instance, saying which limit it hit and how to raise it, before any
/// of its actions is recorded: one instance's runaway loop or oversized
/// status must not become everyone's slow commit or slow status read.
#[derive(Debug, Clone)]
pub struct StepLimits {
    /// Actions that start work: activities, timers, sub-orchestrations
    /// and sent events (a completion or a custom status does not count).
    pub max_actions: usize,
    /// Bytes of one custom status (JSON text).
    pub max_custom_status_bytes: usize,
    /// Bytes of one payload the orchestrator hands on (JSON text): an
    /// activity's or child's input, a sent event, its output, the input it
    /// continues as new with, a failure message; and an activity's output.
    pub max_payload_bytes: usize,
    /// Entries the history of one generation may have; continue-as-new
    /// starts a fresh one.
    pub max_history_entries: usize,
}

impl Default for StepLimits {
    fn default() -> StepLimits {
        StepLimits {
            // 100,000 activities or timers in one step are legitimate fan-out.
            max_actions: 200_000,
            // Durable Functions' limit.
            max_custom_status_bytes: 16 * 1024,
            // As much as a request body may carry (--max-body-bytes).
            max_payload_bytes: 1 << 20,
            // Three times a fan-out of 100,000 activities (scheduled,
            // completed, a step per completion).
            max_history_entries: 1_000_000,
        }
    }
}

impl StepLimits {
    /// An activity's result as the orchestrator gets it: an output or a
    /// failure message beyond `max_payload_bytes` becomes a failure that
    /// says so (the text itself is not stored).
    pub(super) fn bound_activity_result(
        &self,
        name: &str,
        result: Result<String, Failure>,
    ) -> Result<String, Failure> {
        let (what, size) = match &result {
            Err(failure) if failure.kind.len() > MAX_FAILURE_KIND_BYTES => {
                let message = format!(
                    "activity '{name}' failed with a kind of {} bytes, more than the host allows ({MAX_FAILURE_KIND_BYTES}): a kind is a short word",
                    failure.kind.len()
                );
                return Err(Failure::permanent(Failure::LIMITS, message));
            }
            Ok(output) if output.len() > self.max_payload_bytes => ("output", output.len()),
            Err(failure) if failure.message.len() > self.max_payload_bytes => {
                ("failure message", failure.message.len())
            }
            _ => return result,
        };
        Err(Failure::permanent(
            Failure::LIMITS,
            format!(
                "the {what} of activity '{name}' is {size} bytes, more than the host allows ({}; raise --max-payload-bytes, or return a reference to the data instead)",
                self.max_payload_bytes
            ),
        ))
    }

    /// Why a step is more than one may produce, if it is: its `actions`,
    /// taken in a generation whose history has `history_len` entries.
    fn exceeded_by(&self, actions: &[wire::Action], history_len: usize) -> Option<String> {
        let entries = history_len + actions.len();
        if entries > self.max_history_entries {
            return Some(format!(
                "the orchestration's history would have {entries} entries in this generation, more than the host allows ({}; raise --max-history-entries, or continue as new to start a fresh history)",
                self.max_history_entries
            ));
        }
        let work = actions
            .iter()
            .filter(|action| {
                matches!(
                    action,
                    wire::Action::ScheduleActivity(_)
                        | wire::Action::CreateTimer(_)
                        | wire::Action::StartSubOrchestration(_)
                        | wire::Action::StartOrchestration(_)
                        | wire::Action::SendEvent(_)
                        | wire::Action::SignalEntity(_)
                        | wire::Action::CallEntity(_)
                        | wire::Action::LockEntities(_)
                )
            })
            .count();
        if work > self.max_actions {
            return Some(format!(
                "the orchestrator took {work} actions in one step, more than the host allows ({}; raise --max-actions-per-step, or split the work across steps or sub-orchestrations)",
                self.max_actions
            ));
        }
        actions.iter().find_map(|action| match action {
            wire::Action::Fail(failure) if failure.kind.len() > MAX_FAILURE_KIND_BYTES => Some(format!(
                "the orchestrator failed with a kind of {} bytes, more than the host allows ({MAX_FAILURE_KIND_BYTES}): a kind is a short word",
                failure.kind.len()
            )),
            wire::Action::SetCustomStatus(value) if value.len() > self.max_custom_status_bytes => Some(format!(
                "the orchestrator set a custom status of {} bytes, more than the host allows ({}; raise --max-custom-status-bytes, or keep large data in the output or an activity's store)",
                value.len(),
                self.max_custom_status_bytes
            )),
            _ => payload(action)
                .filter(|text| text.len() > self.max_payload_bytes)
                .map(|text| format!(
                    "the orchestrator's {} is {} bytes, more than the host allows ({}; raise --max-payload-bytes, or pass a reference to the data instead)",
                    payload_name(action),
                    text.len(),
                    self.max_payload_bytes
                )),
        })
    }
}

/// The payload an action hands on, if any.
fn payload(action: &wire::Action) -> Option<&str> {
    match action {
        wire::Action::Complete(text) => Some(text),
        wire::Action::Fail(failure) => Some(&failure.message),
        wire::Action::ContinueAsNew(next) => Some(&next.input),
        wire::Action::ScheduleActivity(activity) => Some(&activity.input),
        wire::Action::StartSubOrchestration(child) => Some(&child.input),
        wire::Action::StartOrchestration(start) => Some(&start.input),
        wire::Action::SendEvent(event) => Some(&event.payload),
        wire::Action::SignalEntity(signal) => Some(&signal.input),
        wire::Action::CallEntity(call) => Some(&call.input),
        wire::Action::SetCustomStatus(_)
        | wire::Action::CreateTimer(_)
        | wire::Action::CancelTimer(_)
        | wire::Action::LockEntities(_)
        | wire::Action::UnlockEntities => None,
    }
}

/// What [`payload`] is, for a limit's message: built only when one is hit.
fn payload_name(action: &wire::Action) -> String {
    match action {
        wire::Action::Complete(_) => "output".to_owned(),
        wire::Action::Fail(_) => "failure message".to_owned(),
        wire::Action::ContinueAsNew(_) => "continue-as-new input".to_owned(),
        wire::Action::ScheduleActivity(activity) => {
            format!("input to activity '{}'", activity.name)
        }
        wire::Action::StartSubOrchestration(child) => {
            format!("input to sub-orchestration '{}'", child.name)
        }
        wire::Action::StartOrchestration(start) => {
            format!("input to orchestration '{}'", start.name)
        }
        wire::Action::SendEvent(event) => {
            format!("event '{}' to '{}'", event.name, event.instance_id)
        }
        wire::Action::SignalEntity(wire::SignalEntity {
            target, operation, ..
        })
        | wire::Action::CallEntity(wire::CallEntity {
            target, operation, ..
        }) => {
            format!(
                "input to operation '{operation}' of entity @{}@{}",
                target.name, target.key
            )
        }
        wire::Action::SetCustomStatus(_)
        | wire::Action::CreateTimer(_)
        | wire::Action::CancelTimer(_)
        | wire::Action::LockEntities(_)
        | wire::Action::UnlockEntities => "action".to_owned(),
    }
}

/// The span an episode of `instance` runs in: its log lines carry the
/// instance, orchestrator, version and generation.
pub(crate) fn span(instance: &Instance) -> tracing::Span {
    tracing::info_span!(
        "episode",
        instance = %instance.id,
        orchestrator = %instance.name,
        version = instance.version.as_deref().unwrap_or(""),
        generation = instance.generation,
    )
}

/// Plans the commit for `work`. `None` leaves the messages queued: the
/// instance's orchestrator is not loaded (it may be deployed again later).
/// `Err` is a host failure (not the guest's): nothing is decided, retry later.
/// `fuel` caps each new step below the full budget (a step that needs more
/// is an `Err`); replay always has the full budget.
pub(crate) fn plan(
    runtime: &Runtime,
    limits: &StepLimits,
    warm: Option<WarmExecution>,
    work: WorkItem,
    now: Millis,
    fuel: Option<u64>,
) -> anyhow::Result<Option<Planned>> {
    let began = Instant::now();
    let mut report = EpisodeReport {
        execution: match warm {
            Some(_) => Execution::Warm,
            None if work.history_len == 0 => Execution::New,
            None => Execution::Cold,
        },
        replayed: work.history.len(),
        began: std::time::SystemTime::now(),
        took: Default::default(),
        failure: None,
    };
    let WorkItem {
        instance,
        history,
        history_len,
        messages,
        effects_pending: _,
    } = work;
    // The orchestrator's clock never goes backwards, even if this host's
    // clock is behind the one that ran its last episode.
    let now = now.max(instance.updated_at);
    let first_seq = messages.first().map_or(0, |queued| queued.seq);
    // Sequence number 0: a message a direct episode applies, never queued.
    let read: Vec<i64> = messages
        .iter()
        .map(|queued| queued.seq)
        .filter(|&seq| seq > 0)
        .collect();
    let mut updated = instance.successor(now);

    if instance.status.is_terminal() {
        // Delivery to finished instances is refused at the door, so this is
        // leftover state; consume it so it cannot wedge the instance.
        tracing::warn!(instance = %instance.id, count = messages.len(), "dropping messages queued for a finished instance");
        let commit = EpisodeCommit::consuming(instance, updated, Vec::new(), read);
        report.execution = Execution::NoGuest;
        report.took = began.elapsed();
        return Ok(Some(Planned {
            commit,
            live: None,
            report,
        }));
    }

    // Events up to the first termination request; the store refuses
    // messages once a termination is queued. While the instance is
    // suspended, events and results are held back until a resume.
    let mut events = Vec::new();
    let mut termination = None;
    let mut suspended = instance.status == RuntimeStatus::Suspended;
    let mut held: Vec<QueuedMessage> = Vec::new();
    // The reason of a suspension this episode applies, if it still stands.
    let mut suspension: Option<String> = None;
    for queued in messages {
        match queued.message {
            _ if termination.is_some() => {}
            Message::Terminate { reason } => termination = Some(reason),
            Message::Suspend { reason } => {
                if !suspended {
                    suspended = true;
                    suspension = Some(reason.clone());
                    events.push(HistoryEntry::ExecutionSuspended {
                        timestamp: now,
                        reason,
                    });
                }
            }
            Message::Resume { reason } => {
                if suspended {
                    suspended = false;
                    suspension = None;
                    events.push(HistoryEntry::ExecutionResumed {
                        timestamp: now,
                        reason,
                    });
                    for queued in held.drain(..) {
                        events.extend(event_entry(queued.message, instance.generation, now));
                    }
                }
            }
            Message::Rewind { reason } => events.push(HistoryEntry::ExecutionRewound {
                timestamp: now,
                reason,
            }),
            message if suspended => {
                // What `held_back` counts on: only these wait for a resume.
                debug_assert!(!message.acts_while_suspended());
                held.push(QueuedMessage {
                    seq: queued.seq,
                    message,
                });
            }
            message => events.extend(event_entry(message, instance.generation, now)),
        }
    }
    // Held messages stay queued, in order, for the resume (unless the
    // instance finishes below: then nothing will ever read them).
    let held_from = match held.first() {
        Some(first) if termination.is_none() => Some(first.seq),
        _ => None,
    };
    if held_from == Some(first_seq) {
        // Suspended, and nothing but held messages: nothing to do yet.
        tracing::info!(instance = %instance.id, count = held.len(), "suspended: messages held until it is resumed");
        return Ok(None);
    }

    let entities = match &warm {
        Some(warm) => EntityCalls {
            messages: Vec::new(),
            open_lock: warm.open_lock.clone(),
        },
        None => EntityCalls::after(&history),
    };
    let mut generation = Generation {
        number: instance.generation,
        input: instance.input.clone(),
        version: instance.version.clone(),
        recorded: history,
        recorded_len: history_len,
        new_entries: Vec::new(),
        replaced: false,
        custom_status: None,
        children: Vec::new(),
        sent_events: Vec::new(),
        entities,
    };
    let mut still_warm = None;
    let nothing_for_the_guest = events.iter().all(|entry| {
        matches!(
            entry,
            HistoryEntry::ExecutionSuspended { .. } | HistoryEntry::ExecutionResumed { .. }
        )
    });
    let outcome = if nothing_for_the_guest && (termination.is_some() || generation.recorded_len > 0)
    {
        // Nothing for the guest to see: record the host's decisions only.
        report.execution = Execution::NoGuest;
        generation.start_entries(&instance.name, now);
        generation.new_entries.append(&mut events);
        Outcome::Running
    } else {
        let guest = Guest {
            runtime,
            limits,
            fuel,
        };
        match run_guest(&guest, &instance, &mut generation, events, now, warm) {
            Ok((outcome, live)) => {
                still_warm = live;
                outcome
            }
            // A termination needs no guest: record what arrived and stop.
            Err(GuestError::UnknownOrchestrator(_) | GuestError::VersionUnavailable(_))
                if termination.is_some() =>
            {
                Outcome::Running
            }
            Err(
                error @ (GuestError::UnknownOrchestrator(_) | GuestError::VersionUnavailable(_)),
            ) => {
                tracing::warn!(instance = %instance.id, "orchestrator not loaded ({error}); the instance waits until it is deployed");
                return Ok(None);
            }
            Err(GuestError::Host(error)) => return Err(error),
            Err(error @ GuestError::OverBudget(_)) => return Err(error.into()),
            Err(error) => {
                Outcome::Failed(format!("the orchestrator {error}"), FailureKind::of(&error))
            }
        }
    };

    let outcome = match (outcome, termination) {
        (Outcome::Running, Some(reason)) => Outcome::Terminated(reason),
        (outcome, _) => outcome,
    };
    if !matches!(outcome, Outcome::Running) {
        // A finished instance never steps again (a termination can follow
        // a step that left the guest waiting), and holds no entity.
        still_warm = None;
        generation.release_lock(&instance.id);
    }
    let consumed: Vec<i64> = match held_from {
        Some(held_from) if matches!(outcome, Outcome::Running) => {
            read.into_iter().filter(|&seq| seq < held_from).collect()
        }
        Some(_) => {
            tracing::warn!(instance = %instance.id, count = held.len(), "the instance finished before it was resumed; dropping the events held for the resume");
            read
        }
        None => read,
    };
    // A continue-as-new in this episode started a fresh history; the
    // suspension belongs in it.
    if let Some(reason) = &suspension
        && !generation
            .new_entries
            .iter()
            .any(|entry| matches!(entry, HistoryEntry::ExecutionSuspended { .. }))
    {
        generation
            .new_entries
            .push(HistoryEntry::ExecutionSuspended {
                timestamp: now,
                reason: reason.clone(),
            });
    }
    updated.generation = generation.number;
    updated.input = generation.input.clone();
    updated.version = generation.version.clone();
    if let Some(value) = generation.custom_status.take() {
        updated.custom_status = Some(value);
    }
    if let Outcome::Failed(_, failure) = &outcome {
        report.failure = *failure;
    }
    let (status, output, final_entry) = match outcome {
        Outcome::Running if suspended => (RuntimeStatus::Suspended, None, None),
        Outcome::Running => (RuntimeStatus::Running, None, None),
        Outcome::Completed(output) => (RuntimeStatus::Completed, Some(output), None),
        Outcome::Failed(error, _) => (
            RuntimeStatus::Failed,
            Some(json_string(&error)),
            Some(HistoryEntry::ExecutionFailed {
                timestamp: now,
                error,
                details: None,
            }),
        ),
        Outcome::Terminated(reason) => (
            RuntimeStatus::Terminated,
            Some(json_string(&reason)),
            Some(HistoryEntry::ExecutionTerminated {
                timestamp: now,
                reason,
            }),
        ),
    };
    updated.status = status;
    updated.output = output;
    // A guest that failed by returning an error has recorded that already.
    if let Some(entry) = final_entry
        && !matches!(
            generation.new_entries.last(),
            Some(HistoryEntry::ExecutionFailed { .. })
        )
    {
        generation.new_entries.push(entry);
    }
    // Timers and activities this episode started in the generation it
    // leaves running; the store drops those of ended generations.
    let mut timers = Vec::new();
    let mut activities = Vec::new();
    let mut cancelled_timers = Vec::new();
    for entry in &generation.new_entries {
        match entry {
            HistoryEntry::TimerCreated { id, fire_at, .. } => timers.push((*id, *fire_at)),
            HistoryEntry::TaskScheduled {
                id,
                name,
                input,
                attempt,
                ..
            } => activities.push(ScheduledActivity {
                task_id: *id,
                name: name.clone(),
                input: input.clone(),
                attempt: *attempt,
            }),
            // One created in this episode is simply not set.
            HistoryEntry::TimerCancelled { id, .. } => {
                match timers.iter().position(|(created, _)| created == id) {
                    Some(index) => drop(timers.remove(index)),
                    None => cancelled_timers.push(*id),
                }
            }
            _ => {}
        }
    }
    let children = std::mem::take(&mut generation.children);
    let sent_events = std::mem::take(&mut generation.sent_events);
    let entities = std::mem::take(&mut generation.entities);
    let still_warm = still_warm.map(|(execution, history_len)| WarmExecution {
        instance: updated.clone(),
        history_len,
        execution,
        open_lock: entities.open_lock,
    });
    let commit = EpisodeCommit {
        read: instance,
        updated,
        history: generation.into_change(),
        consumed,
        timers,
        activities,
        lease: ActivityLease::default(),
        children,
        sent_events,
        messages: entities.messages,
        cancelled_timers,
        requeued: Vec::new(),
        removes_empty_entity: false,
        staging: None,
    };
    report.took = began.elapsed();
    tracing::debug!(
        status = %commit.updated.status,
        execution = ?report.execution,
        took_us = report.took.as_micros() as u64,
        "episode planned"
    );
    Ok(Some(Planned {
        commit,
        live: still_warm,
        report,
    }))
}

/// A planned episode: its commit, the execution to keep warm if it
/// commits (the orchestrator waits), and what planning took.
pub(crate) struct Planned {
    pub(crate) commit: EpisodeCommit,
    pub(crate) live: Option<WarmExecution>,
    pub(crate) report: EpisodeReport,
}

/// The history entry a queued event or result becomes; `None` for messages
/// that add no entry, or belong to an ended generation.
fn event_entry(message: Message, generation: u32, now: Millis) -> Option<HistoryEntry> {
    Some(match message {
        Message::Event {
            name,
            payload,
            accepted_at,
        } => HistoryEntry::EventRaised {
            timestamp: accepted_at,
            name,
            payload,
        },
        // A timer of an earlier generation, dropped by continue-as-new.
        Message::TimerFired { generation: g, .. }
        | Message::ActivityDone { generation: g, .. }
        | Message::SubOrchestrationDone { generation: g, .. }
        | Message::EntityCallDone { generation: g, .. }
        | Message::EntitiesLocked { generation: g, .. }
            if g != generation =>
        {
            return None;
        }
        Message::TimerFired { id, fire_at, .. } => HistoryEntry::TimerFired {
            timestamp: now,
            id,
            fire_at,
        },
        Message::SubOrchestrationDone { id, result, .. } => match result {
            Ok(output) => HistoryEntry::SubOrchestrationCompleted {
                timestamp: now,
                id,
                output,
            },
            Err(failure) => HistoryEntry::SubOrchestrationFailed {
                timestamp: now,
                id,
                details: Some(failure.details()),
                error: failure.message,
            },
        },
        Message::ActivityDone { id, result, .. } => match result {
            Ok(output) => HistoryEntry::TaskCompleted {
                timestamp: now,
                id,
                output,
            },
            Err(failure) => HistoryEntry::TaskFailed {
                timestamp: now,
                id,
                details: Some(failure.details()),
                error: failure.message,
            },
        },
        Message::EntityCallDone { id, result, .. } => match result {
            Ok(output) => HistoryEntry::EntityCallCompleted {
                timestamp: now,
                id,
                output,
            },
            Err(failure) => HistoryEntry::EntityCallFailed {
                timestamp: now,
                id,
                details: failure.details(),
                error: failure.message,
            },
        },
        Message::EntitiesLocked { id, .. } => HistoryEntry::EntitiesLocked { timestamp: now, id },
        Message::Start
        | Message::Terminate { .. }
        | Message::Suspend { .. }
        | Message::Resume { .. }
        | Message::Rewind { .. }
        // For entities; never queued for an orchestration.
        | Message::EntityOperation { .. }
        | Message::EntityLock { .. }
        | Message::EntityUnlock { .. } => return None,
    })
}

enum Outcome {
    Running,
    Completed(String),
    /// The reason, and the kind of failure if it is the guest's fault
    /// (not an error it returned).
    Failed(String, Option<FailureKind>),
    Terminated(String),
}

/// The generation an episode is working on; continue-as-new replaces it.
struct Generation {
    number: u32,
    input: String,
    /// The component version it runs on: the instance's, until a
    /// continue-as-new moves to the current one.
    version: Option<String>,
    /// Entries already in the store for this generation; empty when a warm
    /// execution has seen them (and they were not read).
    recorded: Vec<HistoryEntry>,
    /// How many entries are in the store for this generation.
    recorded_len: usize,
    /// Entries this episode adds.
    new_entries: Vec<HistoryEntry>,
    /// Whether this episode started the generation (its history replaces the stored one).
    replaced: bool,
    /// The latest custom status set in this episode, in whichever generation:
    /// it belongs to the instance and survives continue-as-new.
    custom_status: Option<String>,
    /// Sub-orchestrations to start, from every generation this episode ran.
    children: Vec<Result<NewInstance, (ParentTask, Failure)>>,
    /// Events for other instances, from every generation this episode ran.
    sent_events: Vec<(String, String, String)>,
    /// Messages for entities, from every generation this episode ran, and
    /// the lock the current one holds.
    entities: EntityCalls,
}

impl Generation {
    fn start_entries(&mut self, name: &str, now: Millis) {
        if self.recorded_len == 0 && self.new_entries.is_empty() {
            self.new_entries.push(HistoryEntry::ExecutionStarted {
                timestamp: now,
                name: name.to_owned(),
                input: self.input.clone(),
            });
        }
    }

    /// Starts the next generation, on `version` if the orchestrator is
    /// still served (else on the version it ran on).
    fn continue_as_new(&mut self, instance_id: &str, input: String, version: Option<String>) {
        self.release_lock(instance_id);
        self.number += 1;
        self.input = input;
        if version.is_some() {
            self.version = version;
        }
        self.recorded.clear();
        self.recorded_len = 0;
        self.new_entries.clear();
        self.replaced = true;
    }

    /// Releases the lock this generation holds, if it holds one: its end.
    fn release_lock(&mut self, instance_id: &str) {
        let holder = self.sender(instance_id);
        self.entities.release(holder);
    }

    /// This generation of `instance_id`, as the sender of its messages.
    fn sender(&self, instance_id: &str) -> Sender {
        Sender {
            instance_id: instance_id.to_owned(),
            generation: self.number,
            task_id: None,
        }
    }

    fn into_change(self) -> HistoryChange {
        if self.replaced {
            HistoryChange::Replace(self.new_entries)
        } else {
            HistoryChange::Append(self.new_entries)
        }
    }
}

/// What runs an orchestrator's steps, and within what.
struct Guest<'a> {
    runtime: &'a Runtime,
    limits: &'a StepLimits,
    /// Caps each new step below the full budget.
    fuel: Option<u64>,
}

/// Events fed to an orchestrator in one step, at most (besides what it
/// carried over from its last generation, which is its own). More queued
/// events are fed in further steps: an orchestrator that continues as new
/// after each event is then fed at most this many per generation, not the
/// whole flood again by every generation.
const EVENTS_PER_STEP: usize = 256;

/// Replays the generation, feeds it `events` (in steps of at most
/// [`EVENTS_PER_STEP`]), and follows continue-as-new until the orchestrator
/// waits with nothing left to feed, or finishes. A waiting orchestrator's
/// execution comes back with the length of the history it has seen.
/// Events it finished before being fed are recorded all the same, before
/// the entry that ends it.
fn run_guest(
    guest: &Guest,
    instance: &Instance,
    generation: &mut Generation,
    events: Vec<HistoryEntry>,
    now: Millis,
    warm: Option<WarmExecution>,
) -> Result<(Outcome, Option<(GuestExecution, usize)>), GuestError> {
    let mut queued: VecDeque<HistoryEntry> = events.into();
    let outcome = run_steps(guest, instance, generation, &mut queued, now, warm);
    if !queued.is_empty() {
        let entries = &mut generation.new_entries;
        let at = match entries.last() {
            Some(
                HistoryEntry::ExecutionCompleted { .. } | HistoryEntry::ExecutionFailed { .. },
            ) => entries.len() - 1,
            _ => entries.len(),
        };
        entries.splice(at..at, queued);
    }
    outcome
}

/// The events of the next step: all the orchestrator carried over, then
/// queued ones up to [`EVENTS_PER_STEP`] in all (at least one, so that an
/// orchestrator carrying a large buffer still gets new events).
fn next_step_events(
    carried: &mut Vec<HistoryEntry>,
    queued: &mut VecDeque<HistoryEntry>,
) -> Vec<HistoryEntry> {
    let mut events = std::mem::take(carried);
    let room = EVENTS_PER_STEP.saturating_sub(events.len()).max(1);
    events.extend(queued.drain(..room.min(queued.len())));
    events
}

/// The execution that steps `generation`: the warm one (the caller checked
/// it saw exactly the stored history), or a new one replayed through the
/// recorded history. The inner `Err` is a non-determinism report.
fn execution_for(
    runtime: &Runtime,
    instance: &Instance,
    generation: &Generation,
    warm: Option<WarmExecution>,
) -> Result<Result<GuestExecution, String>, GuestError> {
    if let Some(live) = warm {
        return Ok(Ok(live.execution));
    }
    let mut execution = runtime.start_execution(
        &instance.name,
        generation.version.as_deref(),
        &instance.id,
        &generation.input,
        generation.number,
    )?;
    let replayed = replay(
        &mut execution,
        &instance.id,
        generation.number,
        &generation.recorded,
    )?;
    Ok(replayed.map(|()| execution))
}

/// See [`run_guest`]; leaves in `queued` what it did not feed.
fn run_steps(
    guest: &Guest,
    instance: &Instance,
    generation: &mut Generation,
    queued: &mut VecDeque<HistoryEntry>,
    now: Millis,
    mut warm: Option<WarmExecution>,
) -> Result<(Outcome, Option<(GuestExecution, usize)>), GuestError> {
    let runtime = guest.runtime;
    let mut idle_generations = 0;
    let mut carry_over = Vec::new();
    'generations: loop {
        // Where this step's entries begin (a new generation's start entry
        // included).
        let mut step_start = generation.new_entries.len();
        generation.start_entries(&instance.name, now);
        let mut started: Option<GuestExecution> = None;
        loop {
            generation
                .new_entries
                .push(HistoryEntry::OrchestratorStarted { timestamp: now });
            let mut events = next_step_events(&mut carry_over, queued);
            let fed = events.len();
            generation.new_entries.append(&mut events);
            let episode: Vec<wire::HistoryEvent> = generation.new_entries[step_start..]
                .iter()
                .filter_map(|entry| guest_event(entry, &instance.id))
                .collect();

            // The new entries are recorded even if the guest fails below, so
            // every consumed message stays visible in the history.
            let execution = match &mut started {
                Some(execution) => execution,
                None => match execution_for(runtime, instance, generation, warm.take())? {
                    Ok(execution) => started.insert(execution),
                    Err(mismatch) => {
                        let failed = Outcome::Failed(mismatch, Some(FailureKind::NonDeterminism));
                        return Ok((failed, None));
                    }
                },
            };
            let actions = execution.step_within(now, &episode, guest.fuel)?;
            let history_len = generation.recorded_len + generation.new_entries.len();
            if let Some(failure) = guest.limits.exceeded_by(&actions, history_len) {
                return Ok((Outcome::Failed(failure, Some(FailureKind::Limits)), None));
            }

            match apply_actions(runtime, instance, generation, actions, now) {
                AfterStep::Waits => {}
                AfterStep::Ends(outcome) => return Ok((outcome, None)),
                AfterStep::ContinuesAsNew(next) => {
                    let carried = next.carried_over_events.len();
                    idle_generations = if carried < fed {
                        0
                    } else {
                        idle_generations + 1
                    };
                    if idle_generations >= MAX_IDLE_GENERATIONS {
                        return Ok((
                            Outcome::Failed(
                                format!(
                                    "the orchestrator continued as new {MAX_IDLE_GENERATIONS} times in a row without consuming an event; it would never stop"
                                ),
                                Some(FailureKind::Limits),
                            ),
                            None,
                        ));
                    }
                    // Continue-as-new is where an eternal orchestration
                    // moves to the version deployed since it started.
                    let current = runtime.current_version(&instance.name);
                    generation.continue_as_new(&instance.id, next.input, current);
                    carry_over = next
                        .carried_over_events
                        .into_iter()
                        .map(|event| HistoryEntry::EventRaised {
                            timestamp: now,
                            name: event.name,
                            payload: event.payload,
                        })
                        .collect();
                    continue 'generations;
                }
            }
            if queued.is_empty() {
                // It waits: keep it for the next episode, having seen this one too.
                let seen = generation.recorded_len + generation.new_entries.len();
                let execution = started.take().expect("it stepped");
                return Ok((Outcome::Running, Some((execution, seen))));
            }
            // More to feed: another step of the same generation.
            step_start = generation.new_entries.len();
        }
    }
}

/// What a step's actions leave the generation to do.
enum AfterStep {
    /// Wait for what it awaits, or take the next queued events.
    Waits,
    /// It ended the instance.
    Ends(Outcome),
    /// It continues as new.
    ContinuesAsNew(wire::ContinueAsNew),
}

/// Records a step's `actions` in `generation`, in order, and says what
/// follows them.
fn apply_actions(
    runtime: &Runtime,
    instance: &Instance,
    generation: &mut Generation,
    actions: Vec<wire::Action>,
    now: Millis,
) -> AfterStep {
    // Where the instances it starts go in its trace, if it is traced.
    let child_trace =
        || InstanceTrace::of(instance.trace.as_deref()).map(|trace| trace.child().to_text());
    for action in actions {
        match action {
            wire::Action::SetCustomStatus(value) => {
                generation.custom_status = Some(value.clone());
                generation.new_entries.push(HistoryEntry::CustomStatusSet {
                    timestamp: now,
                    value,
                });
            }
            wire::Action::CreateTimer(_)
            | wire::Action::CancelTimer(_)
            | wire::Action::ScheduleActivity(_) => {
                generation.new_entries.extend(action_entry(action, now));
            }
            wire::Action::StartOrchestration(start) => {
                match own_start(runtime, &start, now, child_trace()) {
                    Ok(new) => generation.children.push(Ok(new)),
                    Err(error) => return AfterStep::Ends(Outcome::Failed(error, None)),
                }
                generation
                    .new_entries
                    .extend(action_entry(wire::Action::StartOrchestration(start), now));
            }
            wire::Action::SignalEntity(_)
            | wire::Action::CallEntity(_)
            | wire::Action::LockEntities(_)
            | wire::Action::UnlockEntities => {
                let sender = generation.sender(&instance.id);
                match generation.entities.take(action, sender, now) {
                    Ok(entry) => generation.new_entries.push(entry),
                    Err(rule) => return AfterStep::Ends(Outcome::Failed(rule, None)),
                }
            }
            wire::Action::StartSubOrchestration(child) => {
                let parent = ParentTask {
                    instance_id: instance.id.clone(),
                    generation: generation.number,
                    task_id: child.id,
                };
                let start = child_start(runtime, &child, parent, now, child_trace());
                generation.children.push(start);
                generation.new_entries.extend(action_entry(
                    wire::Action::StartSubOrchestration(child),
                    now,
                ));
            }
            wire::Action::SendEvent(event) => {
                generation.sent_events.push((
                    event.instance_id.clone(),
                    event.name.clone(),
                    event.payload.clone(),
                ));
                generation
                    .new_entries
                    .extend(action_entry(wire::Action::SendEvent(event), now));
            }
            wire::Action::Complete(output) => {
                generation
                    .new_entries
                    .push(HistoryEntry::ExecutionCompleted {
                        timestamp: now,
                        output: output.clone(),
                    });
                return AfterStep::Ends(Outcome::Completed(output));
            }
            wire::Action::Fail(failure) => {
                let error = failure.message.clone();
                generation
                    .new_entries
                    .extend(action_entry(wire::Action::Fail(failure), now));
                return AfterStep::Ends(Outcome::Failed(error, None));
            }
            wire::Action::ContinueAsNew(next) => return AfterStep::ContinuesAsNew(next),
        }
    }
    AfterStep::Waits
}

/// Feeds the recorded history back, one recorded episode per step, and
/// checks the guest takes the recorded actions again. The inner `Err` is a
/// non-determinism report.
pub(super) fn replay(
    execution: &mut GuestExecution,
    instance_id: &str,
    generation: u32,
    recorded: &[HistoryEntry],
) -> Result<Result<(), String>, GuestError> {
    for (index, episode) in recorded_episodes(recorded).into_iter().enumerate() {
        let events: Vec<wire::HistoryEvent> = episode
            .iter()
            .filter_map(|entry| guest_event(entry, instance_id))
            .collect();
        let expected: Vec<&HistoryEntry> =
            episode.iter().filter(|entry| is_action(entry)).collect();
        let actual = execution.replay_step(episode_time(episode), &events)?;
        let position = actual.len().max(expected.len());
        for n in 0..position {
            let actual = actual
                .get(n)
                .map(|action| action_entry(action.clone(), 0).map(|entry| comparable(&entry)));
            let expected = expected.get(n).map(|entry| Some(comparable(entry)));
            if actual != expected {
                return Ok(Err(format!(
                    "non-determinism: replaying episode {} of generation {}, action {} was recorded as {} but the orchestrator now takes {}; was the orchestrator changed while this instance was running?",
                    index + 1,
                    generation,
                    n + 1,
                    describe(expected.flatten().as_ref()),
                    describe(actual.flatten().as_ref()),
                )));
            }
        }
    }
    Ok(Ok(()))
}

/// Splits a generation's history at each orchestrator-started entry.
pub(super) fn recorded_episodes(history: &[HistoryEntry]) -> Vec<&[HistoryEntry]> {
    let mut episodes = Vec::new();
    let mut start = 0;
    let mut seen_episode_start = false;
    for (index, entry) in history.iter().enumerate() {
        if let HistoryEntry::OrchestratorStarted { .. } = entry {
            if seen_episode_start {
                episodes.push(&history[start..index]);
                start = index;
            }
            seen_episode_start = true;
        }
    }
    if start < history.len() {
        episodes.push(&history[start..]);
    }
    episodes
}

fn episode_time(episode: &[HistoryEntry]) -> Millis {
    episode
        .iter()
        .find_map(|entry| match entry {
            HistoryEntry::OrchestratorStarted { timestamp } => Some(*timestamp),
            _ => None,
        })
        .unwrap_or(0)
}

/// The guest's view of a history entry, if it is an event the guest sees.
fn guest_event(entry: &HistoryEntry, instance_id: &str) -> Option<wire::HistoryEvent> {
    Some(match entry {
        HistoryEntry::ExecutionStarted { name, input, .. } => {
            wire::HistoryEvent::ExecutionStarted(wire::ExecutionStarted {
                name: name.clone(),
                instance_id: instance_id.to_owned(),
                input: input.clone(),
            })
        }
        HistoryEntry::OrchestratorStarted { timestamp } => {
            wire::HistoryEvent::OrchestratorStarted(*timestamp)
        }
        HistoryEntry::EventRaised { name, payload, .. } => {
            wire::HistoryEvent::EventRaised(wire::EventRaised {
                name: name.clone(),
                payload: payload.clone(),
            })
        }
        HistoryEntry::TimerFired { id, .. } => wire::HistoryEvent::TimerFired(*id),
        HistoryEntry::TaskCompleted { id, output, .. } => {
            wire::HistoryEvent::ActivityCompleted(wire::TaskCompleted {
                id: *id,
                output: output.clone(),
            })
        }
        HistoryEntry::TaskFailed {
            id, error, details, ..
        } => wire::HistoryEvent::ActivityFailed(wire::TaskFailed {
            id: *id,
            failure: Failure::recorded(error, details.as_ref()).into(),
        }),
        HistoryEntry::SubOrchestrationCompleted { id, output, .. } => {
            wire::HistoryEvent::SubOrchestrationCompleted(wire::TaskCompleted {
                id: *id,
                output: output.clone(),
            })
        }
        HistoryEntry::SubOrchestrationFailed {
            id, error, details, ..
        } => wire::HistoryEvent::SubOrchestrationFailed(wire::TaskFailed {
            id: *id,
            failure: Failure::recorded(error, details.as_ref()).into(),
        }),
        HistoryEntry::EntityCallCompleted { id, output, .. } => {
            wire::HistoryEvent::EntityCallCompleted(wire::TaskCompleted {
                id: *id,
                output: output.clone(),
            })
        }
        HistoryEntry::EntityCallFailed {
            id, error, details, ..
        } => wire::HistoryEvent::EntityCallFailed(wire::TaskFailed {
            id: *id,
            failure: Failure::recorded(error, Some(details)).into(),
        }),
        HistoryEntry::EntitiesLocked { id, .. } => wire::HistoryEvent::EntitiesLocked(*id),
        _ => return None,
    })
}

/// Whether the entry records something the guest did (and replay must repeat).
fn is_action(entry: &HistoryEntry) -> bool {
    matches!(
        entry,
        HistoryEntry::CustomStatusSet { .. }
            | HistoryEntry::ExecutionCompleted { .. }
            | HistoryEntry::ExecutionFailed { .. }
            | HistoryEntry::ContinuedAsNew { .. }
            | HistoryEntry::TimerCreated { .. }
            | HistoryEntry::TaskScheduled { .. }
            | HistoryEntry::SubOrchestrationCreated { .. }
            | HistoryEntry::EventSent { .. }
            | HistoryEntry::TimerCancelled { .. }
            | HistoryEntry::OrchestrationStarted { .. }
            | HistoryEntry::EntitySignaled { .. }
            | HistoryEntry::EntityCalled { .. }
            | HistoryEntry::EntityLockRequested { .. }
            | HistoryEntry::EntitiesUnlocked { .. }
    )
}

/// The history entry recording `action`; `None` for an action this host
/// does not record (it fails the instance instead).
fn action_entry(action: wire::Action, timestamp: Millis) -> Option<HistoryEntry> {
    Some(match action {
        wire::Action::Complete(output) => HistoryEntry::ExecutionCompleted { timestamp, output },
        wire::Action::Fail(failure) => {
            let failure = Failure::from(failure);
            HistoryEntry::ExecutionFailed {
                timestamp,
                details: Some(failure.details()),
                error: failure.message,
            }
        }
        wire::Action::ContinueAsNew(next) => HistoryEntry::ContinuedAsNew {
            timestamp,
            input: next.input,
        },
        wire::Action::SetCustomStatus(value) => HistoryEntry::CustomStatusSet { timestamp, value },
        wire::Action::CreateTimer(timer) => HistoryEntry::TimerCreated {
            timestamp,
            id: timer.id,
            fire_at: timer.fire_at,
        },
        wire::Action::ScheduleActivity(activity) => HistoryEntry::TaskScheduled {
            timestamp,
            id: activity.id,
            name: activity.name,
            input: activity.input,
            attempt: activity.attempt,
        },
        wire::Action::StartSubOrchestration(child) => HistoryEntry::SubOrchestrationCreated {
            timestamp,
            id: child.id,
            name: child.name,
            instance_id: child.instance_id,
            input: child.input,
        },
        wire::Action::SendEvent(event) => HistoryEntry::EventSent {
            timestamp,
            instance_id: event.instance_id,
            name: event.name,
            payload: event.payload,
        },
        wire::Action::CancelTimer(id) => HistoryEntry::TimerCancelled { timestamp, id },
        wire::Action::StartOrchestration(start) => HistoryEntry::OrchestrationStarted {
            timestamp,
            name: start.name,
            instance_id: start.instance_id,
            input: start.input,
        },
        action @ (wire::Action::SignalEntity(_)
        | wire::Action::CallEntity(_)
        | wire::Action::LockEntities(_)
        | wire::Action::UnlockEntities) => return entity_calls::entry_of(action, timestamp),
    })
}

/// `entry` as replay compares it: without its time, and without failure
/// details (a history recorded before them, or by a guest built against a
/// contract without them, replays as it was).
fn comparable(entry: &HistoryEntry) -> HistoryEntry {
    let mut entry = entry.clone();
    *entry.timestamp_mut() = 0;
    if let HistoryEntry::ExecutionFailed { details, .. } = &mut entry {
        *details = None;
    }
    entry
}

fn describe(entry: Option<&HistoryEntry>) -> String {
    match entry {
        None => "nothing".to_owned(),
        Some(HistoryEntry::CustomStatusSet { value, .. }) => format!("set-custom-status({value})"),
        Some(HistoryEntry::ExecutionCompleted { output, .. }) => format!("complete({output})"),
        Some(HistoryEntry::ExecutionFailed { error, .. }) => format!("fail({error:?})"),
        Some(HistoryEntry::ContinuedAsNew { input, .. }) => format!("continue-as-new({input})"),
        Some(HistoryEntry::TimerCreated { id, fire_at, .. }) => {
            format!("create-timer(task {id}, due at {fire_at} ms)")
        }
        Some(HistoryEntry::TaskScheduled {
            id, name, input, ..
        }) => {
            format!("schedule-activity(task {id}, {name:?}, {input})")
        }
        Some(HistoryEntry::SubOrchestrationCreated {
            id, name, input, ..
        }) => {
            format!("start-sub-orchestration(task {id}, {name:?}, {input})")
        }
        Some(HistoryEntry::EventSent {
            instance_id, name, ..
        }) => {
            format!("send-event({instance_id:?}, {name:?})")
        }
        Some(HistoryEntry::TimerCancelled { id, .. }) => format!("cancel-timer(task {id})"),
        Some(HistoryEntry::OrchestrationStarted {
            name, instance_id, ..
        }) => {
            format!("start-orchestration({name:?}, {instance_id:?})")
        }
        Some(other) => other.event_type().to_owned(),
    }
}

/// The start of a child instance (with `trace`, its place in its parent's
/// trace, if that is traced), or why it cannot start.
fn child_start(
    runtime: &Runtime,
    child: &wire::StartSubOrchestration,
    parent: ParentTask,
    now: Millis,
    trace: Option<String>,
) -> Result<NewInstance, (ParentTask, Failure)> {
    let id = child
        .instance_id
        .clone()
        .unwrap_or_else(|| parent.default_child_id());
    let start = Start {
        id,
        name: &child.name,
        input: &child.input,
        parent: Some(parent.clone()),
    };
    start.checked(runtime, now, trace).map_err(|refused| {
        let failure = match refused {
            Refused::BadId(error) => Failure::permanent(
                Failure::ERROR,
                format!("cannot start a sub-orchestration: {error}"),
            ),
            Refused::NotLoaded => Failure::permanent(
                Failure::NOT_FOUND,
                format!("no orchestrator named '{}' is loaded", child.name),
            ),
        };
        (parent, failure)
    })
}

/// The start of an instance an orchestrator starts on its own, or why it
/// cannot start (which fails the orchestrator: there is no task to report
/// to).
pub(super) fn own_start(
    runtime: &Runtime,
    start: &wire::StartOrchestration,
    now: Millis,
    trace: Option<String>,
) -> Result<NewInstance, String> {
    let own = Start {
        id: start.instance_id.clone(),
        name: &start.name,
        input: &start.input,
        parent: None,
    };
    own.checked(runtime, now, trace).map_err(|refused| {
        let why = match refused {
            Refused::BadId(error) => error,
            Refused::NotLoaded => "no orchestrator of that name is loaded".to_owned(),
        };
        format!(
            "cannot start orchestration '{}' as '{}': {why}",
            start.name, start.instance_id
        )
    })
}

/// An instance an orchestrator asks to start, as a child or on its own.
struct Start<'a> {
    id: String,
    name: &'a str,
    input: &'a str,
    parent: Option<ParentTask>,
}

/// Why an instance an orchestrator asks for cannot start.
enum Refused {
    BadId(String),
    NotLoaded,
}

impl Start<'_> {
    /// The new instance, on the orchestrator's current version, if its ID
    /// is valid and its orchestrator loaded.
    fn checked(
        self,
        runtime: &Runtime,
        now: Millis,
        trace: Option<String>,
    ) -> Result<NewInstance, Refused> {
        InstanceId::parse(&self.id).map_err(|error| Refused::BadId(error.to_string()))?;
        if EntityId::is_entity(&self.id) {
            let why = format!(
                "instance ID '{}' starts with '@', which only entities' IDs do",
                self.id
            );
            return Err(Refused::BadId(why));
        }
        let version = runtime
            .current_version(self.name)
            .ok_or(Refused::NotLoaded)?;
        Ok(NewInstance {
            id: self.id,
            name: self.name.to_owned(),
            input: self.input.to_owned(),
            now,
            parent: self.parent,
            version: Some(version),
            trace,
        })
    }
}

pub(super) fn json_string(text: &str) -> String {
    serde_json::Value::String(text.to_owned()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn started(timestamp: Millis) -> HistoryEntry {
        HistoryEntry::OrchestratorStarted { timestamp }
    }

    fn raised(n: usize) -> HistoryEntry {
        HistoryEntry::EventRaised {
            timestamp: 1,
            name: "e".into(),
            payload: n.to_string(),
        }
    }

    #[test]
    fn a_step_is_fed_what_was_carried_over_then_queued_events_up_to_the_bound() {
        let mut queued: VecDeque<HistoryEntry> = (0..600).map(raised).collect();
        let mut carried = Vec::new();
        let first = next_step_events(&mut carried, &mut queued);
        assert_eq!(first, (0..256).map(raised).collect::<Vec<_>>());

        // Carried over (the guest's own buffer) comes first, whole.
        carried = (1000..1010).map(raised).collect();
        let second = next_step_events(&mut carried, &mut queued);
        assert_eq!(second.len(), 256);
        assert_eq!(
            second[..10],
            (1000..1010).map(raised).collect::<Vec<_>>()[..]
        );
        assert_eq!(second[10], raised(256));
        assert!(carried.is_empty());

        // A buffer beyond the bound still gets one new event.
        carried = (2000..2300).map(raised).collect();
        let third = next_step_events(&mut carried, &mut queued);
        assert_eq!(third.len(), 301);
        assert_eq!(queued.len(), 600 - 256 - 246 - 1);
    }

    #[test]
    fn recorded_history_splits_before_each_orchestrator_started() {
        let execution_started = HistoryEntry::ExecutionStarted {
            timestamp: 1,
            name: "n".into(),
            input: "null".into(),
        };
        let event = HistoryEntry::EventRaised {
            timestamp: 3,
            name: "e".into(),
            payload: "1".into(),
        };
        let history = vec![execution_started, started(1), started(2), event, started(4)];
        let episodes = recorded_episodes(&history);
        assert_eq!(
            episodes
                .iter()
                .map(|episode| episode.len())
                .collect::<Vec<_>>(),
            vec![2, 2, 1]
        );
        assert_eq!(episode_time(episodes[1]), 2);
    }
}
