//! An entity's episode: apply its queued messages, one at a time, in the
//! order they arrived, and store its record whole (see
//! [`crate::entity`]).
//!
//! First the messages are scheduled against the entity's lock: while an
//! orchestration holds it, only that orchestration's operations apply, and
//! everyone else's are put aside in the record until it is released (then
//! they go first, in their order). Then the operations that apply run in
//! one guest instance, and their answers, signals and starts go out with
//! the new record in one commit: an operation is applied exactly once, or
//! (if the host dies before the commit) not at all and again later.

use std::collections::VecDeque;
use std::time::Instant;

use anyhow::Context as _;

use crate::entity::{EntityId, EntityRecord};
use crate::model::{Failure, Message, Millis, RuntimeStatus, Sender};
use crate::runtime::{GuestError, Runtime, wire};
use crate::store::{EpisodeCommit, HistoryChange, NewInstance, WorkItem};

use super::activities::failure_kind;
use super::episode::{Planned, StepLimits, own_start};
use crate::metrics::{EpisodeReport, Execution, FailureKind};

/// An operation that applies in this episode, and who awaits its result.
struct Applicable {
    operation: wire::Operation,
    sender: Option<Sender>,
}

/// What scheduling the messages against the lock came to.
#[derive(Default)]
struct Scheduled {
    operations: Vec<Applicable>,
    /// Lock requests and releases passed on, each with the number of
    /// operations that applied before it (so they go out in that order).
    passed_on: Vec<(usize, (String, Message))>,
}

/// Plans `work`'s commit, for the entity `work.instance` is. `Err` is a
/// host failure: nothing is decided, retry later.
pub(super) fn plan(
    runtime: &Runtime,
    limits: &StepLimits,
    work: WorkItem,
    now: Millis,
) -> anyhow::Result<Planned> {
    let began = Instant::now();
    let WorkItem {
        instance,
        history,
        messages,
        ..
    } = work;
    let entity = EntityId::of_instance(&instance.id)
        .with_context(|| format!("{} is not an entity's ID", instance.id))?;
    let now = now.max(instance.updated_at);
    let consumed: Vec<i64> = messages
        .iter()
        .map(|queued| queued.seq)
        .filter(|&seq| seq > 0)
        .collect();
    let mut record = EntityRecord::from_history(&history);
    let arrived = messages.into_iter().map(|queued| queued.message);
    let scheduled = schedule(&mut record, arrived);
    let me = Sender {
        instance_id: instance.id.clone(),
        generation: 0,
        task_id: None,
    };
    let mut out = Outgoing::default();
    let outcomes = apply(runtime, limits, &entity, &mut record, &scheduled.operations)?;
    let mut passed_on = scheduled.passed_on.into_iter().peekable();
    for (index, (applicable, outcome)) in scheduled.operations.iter().zip(outcomes).enumerate() {
        while let Some((_, message)) = passed_on.next_if(|(before, _)| *before <= index) {
            out.messages.push(message);
        }
        out.operation_done(runtime, applicable, outcome, &me, now);
    }
    out.messages.extend(passed_on.map(|(_, message)| message));
    if !scheduled.operations.is_empty() {
        record.last_operation = now;
    }

    let mut updated = instance.successor(now);
    updated.status = RuntimeStatus::Running;
    let mut commit = EpisodeCommit::consuming(instance, updated, Vec::new(), consumed);
    commit.removes_empty_entity = record.is_empty();
    commit.history = HistoryChange::Replace(vec![record.into_entry()]);
    commit.messages = out.messages;
    commit.children = out.starts.into_iter().map(Ok).collect();
    let report = EpisodeReport {
        execution: Execution::Entity,
        began: std::time::SystemTime::now(),
        replayed: 0,
        took: began.elapsed(),
        failure: None,
    };
    Ok(Planned {
        commit,
        live: None,
        report,
    })
}

/// Schedules `arrived` (after what the record put aside) against the
/// record's lock: takes and releases the lock, and picks the operations
/// that apply now; the rest stay in the record, in order.
fn schedule(record: &mut EntityRecord, arrived: impl Iterator<Item = Message>) -> Scheduled {
    let mut queue: VecDeque<Message> = std::mem::take(&mut record.deferred).into();
    queue.extend(arrived);
    let mut scheduled = Scheduled::default();
    let mut deferred: Vec<Message> = Vec::new();
    while let Some(message) = queue.pop_front() {
        let applied = scheduled.operations.len();
        match message {
            Message::EntityOperation {
                operation,
                input,
                sender,
                ..
            } if may_apply(record.locked_by.as_ref(), sender.as_ref()) => {
                scheduled.operations.push(Applicable {
                    operation: wire::Operation {
                        name: operation,
                        input,
                    },
                    sender,
                })
            }
            Message::EntityLock {
                holder,
                targets,
                position,
            } if record.locked_by.is_none() => {
                record.locked_by = Some(holder.clone());
                let next = match targets.get(position + 1) {
                    Some(next) => (
                        next.clone(),
                        Message::EntityLock {
                            holder,
                            targets,
                            position: position + 1,
                        },
                    ),
                    None => (
                        holder.instance_id.clone(),
                        Message::EntitiesLocked {
                            generation: holder.generation,
                            id: holder.task_id.unwrap_or_default(),
                        },
                    ),
                };
                scheduled.passed_on.push((applied, next));
            }
            Message::EntityUnlock {
                holder,
                targets,
                position,
            } => {
                if record
                    .locked_by
                    .as_ref()
                    .is_some_and(|locked| locked.released_by(&holder))
                {
                    record.locked_by = None;
                    if let Some(next) = targets.get(position + 1) {
                        let release = Message::EntityUnlock {
                            holder,
                            targets: targets.clone(),
                            position: position + 1,
                        };
                        scheduled.passed_on.push((applied, (next.clone(), release)));
                    }
                    // What waited for the release goes first, in order.
                    for waiting in deferred.drain(..).rev() {
                        queue.push_front(waiting);
                    }
                } else {
                    // Released before it was granted here: the request
                    // waits here and went no further; it is withdrawn.
                    deferred.retain(|waiting| {
                        !matches!(waiting, Message::EntityLock { holder: requester, .. } if requester.released_by(&holder))
                    });
                }
            }
            message @ (Message::EntityOperation { .. } | Message::EntityLock { .. }) => {
                deferred.push(message)
            }
            other => {
                tracing::warn!(message = ?other, "dropping a message an entity does not take");
            }
        }
    }
    record.deferred = deferred;
    scheduled
}

/// Whether an operation from `sender` applies while `locked_by` holds the
/// entity: any, while nobody does; only the holder's, while one does.
fn may_apply(locked_by: Option<&Sender>, sender: Option<&Sender>) -> bool {
    match (locked_by, sender) {
        (None, _) => true,
        (Some(holder), Some(sender)) => holder.same_generation(sender),
        (Some(_), None) => false,
    }
}

/// Runs `operations` in order on the record's state, one guest instance
/// for as many as run without a fault; the result of each, in order.
fn apply(
    runtime: &Runtime,
    limits: &StepLimits,
    entity: &EntityId,
    record: &mut EntityRecord,
    operations: &[Applicable],
) -> anyhow::Result<Vec<wire::Outcome>> {
    let id = wire::EntityId {
        name: entity.name().to_owned(),
        key: entity.key().to_owned(),
    };
    let mut outcomes = Vec::with_capacity(operations.len());
    while outcomes.len() < operations.len() {
        let rest: Vec<wire::Operation> = operations[outcomes.len()..]
            .iter()
            .map(|applicable| applicable.operation.clone())
            .collect();
        let failed = |failure: Failure| wire::Outcome {
            state: None,
            output: Err(failure.into()),
            actions: Vec::new(),
        };
        let within_limits = |outcome| bounded(limits, outcome);
        match runtime.run_entity(None, &id, record.state.clone(), &rest, within_limits) {
            Ok(batch) => {
                for outcome in batch.outcomes {
                    if outcome.output.is_ok() {
                        record.state.clone_from(&outcome.state);
                    }
                    outcomes.push(outcome);
                }
                if let Some(fault) = batch.fault {
                    outcomes.push(failed(fault_failure(&fault)));
                }
            }
            Err(GuestError::Host(error)) => return Err(error),
            Err(error @ (GuestError::UnknownEntity(_) | GuestError::VersionUnavailable(_))) => {
                let failure = Failure::permanent(Failure::NOT_FOUND, error.to_string());
                outcomes.resize_with(operations.len(), || failed(failure.clone()));
            }
            // It could not even start: the first operation fails.
            Err(error) => outcomes.push(failed(fault_failure(&error))),
        }
    }
    Ok(outcomes)
}

/// An operation's outcome within the host's limits: a state, output or
/// number of actions beyond them fails the operation, saying so.
fn bounded(limits: &StepLimits, outcome: wire::Outcome) -> wire::Outcome {
    let state = outcome.state.as_deref().map_or(0, str::len);
    let output = match &outcome.output {
        Ok(output) => output.len(),
        Err(failure) => failure.message.len(),
    };
    let why = if state > limits.max_payload_bytes || output > limits.max_payload_bytes {
        format!(
            "the entity's state or result is {} bytes, more than the host allows ({}; raise --max-payload-bytes)",
            state.max(output),
            limits.max_payload_bytes
        )
    } else if outcome.actions.len() > limits.max_actions {
        format!(
            "the operation took {} actions, more than the host allows ({}; raise --max-actions-per-step)",
            outcome.actions.len(),
            limits.max_actions
        )
    } else {
        return outcome;
    };
    wire::Outcome {
        state: None,
        output: Err(Failure::permanent(Failure::LIMITS, why).into()),
        actions: Vec::new(),
    }
}

/// The failure an operation gets from a guest that failed running it.
fn fault_failure(error: &GuestError) -> Failure {
    let kind = FailureKind::of(error);
    Failure::new(failure_kind(kind), format!("the entity {error}"))
}

/// What an episode sends.
#[derive(Default)]
struct Outgoing {
    messages: Vec<(String, Message)>,
    starts: Vec<NewInstance>,
}

impl Outgoing {
    /// Sends what applying `applicable` came to: its result to a caller,
    /// and (if it succeeded) its signals and starts.
    fn operation_done(
        &mut self,
        runtime: &Runtime,
        applicable: &Applicable,
        outcome: wire::Outcome,
        me: &Sender,
        now: Millis,
    ) {
        let succeeded = outcome.output.is_ok();
        if let Some(caller) = &applicable.sender
            && let Some(task) = caller.task_id
        {
            let result = outcome.output.map_err(Failure::from);
            let answer = Message::EntityCallDone {
                generation: caller.generation,
                id: task,
                result,
            };
            self.messages.push((caller.instance_id.clone(), answer));
        }
        if !succeeded {
            return;
        }
        for action in outcome.actions {
            match action {
                wire::EntityAction::SignalEntity(signal) => {
                    let target = match EntityId::checked(&signal.target.name, &signal.target.key) {
                        Ok(target) => target,
                        Err(why) => {
                            tracing::warn!(
                                "an entity's signal goes nowhere: {why}; the operation's other effects stand"
                            );
                            continue;
                        }
                    };
                    let message = Message::EntityOperation {
                        operation: signal.operation,
                        input: signal.input,
                        sender: Some(me.clone()),
                        accepted_at: now,
                    };
                    self.messages.push((target.instance_id(), message));
                }
                wire::EntityAction::StartOrchestration(start) => {
                    match own_start(runtime, &start, now, None) {
                        Ok(new) => self.starts.push(new),
                        Err(why) => tracing::warn!("{why}; the operation's other effects stand"),
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn holder(instance: &str) -> Sender {
        Sender {
            instance_id: instance.into(),
            generation: 0,
            task_id: Some(1),
        }
    }

    fn operation(name: &str, sender: Option<Sender>) -> Message {
        Message::EntityOperation {
            operation: name.into(),
            input: "null".into(),
            sender,
            accepted_at: 0,
        }
    }

    fn lock(instance: &str) -> Message {
        Message::EntityLock {
            holder: holder(instance),
            targets: vec!["@a@1".into(), "@a@2".into()],
            position: 0,
        }
    }

    fn unlock(instance: &str) -> Message {
        Message::EntityUnlock {
            holder: holder(instance),
            targets: vec!["@a@1".into(), "@a@2".into()],
            position: 0,
        }
    }

    fn names(scheduled: &Scheduled) -> Vec<&str> {
        scheduled
            .operations
            .iter()
            .map(|applicable| applicable.operation.name.as_str())
            .collect()
    }

    #[test]
    fn while_locked_only_the_holders_operations_apply_and_the_rest_wait_in_order() {
        let mut record = EntityRecord::default();
        let arrived = vec![
            operation("before", None),
            lock("t"),
            operation("client", None),
            operation("holder", Some(holder("t"))),
            lock("u"),
            operation("other", Some(holder("u"))),
        ];
        let scheduled = schedule(&mut record, arrived.into_iter());
        assert_eq!(names(&scheduled), ["before", "holder"]);
        assert_eq!(record.locked_by, Some(holder("t")));
        assert_eq!(record.deferred.len(), 3, "{:?}", record.deferred);
        // Passed on to the second entity, after the one operation before it.
        let [(1, (next, Message::EntityLock { position: 1, .. }))] = &scheduled.passed_on[..]
        else {
            panic!("{:?}", scheduled.passed_on.len());
        };
        assert_eq!(next, "@a@2");

        // The release lets the waiting ones go, in order: the client's
        // operation, then u's lock, under which u's operation applies.
        let scheduled = schedule(&mut record, vec![unlock("t")].into_iter());
        assert_eq!(names(&scheduled), ["client", "other"]);
        assert_eq!(record.locked_by, Some(holder("u")));
        assert_eq!(record.deferred.len(), 0);
        let passed: Vec<&str> = scheduled
            .passed_on
            .iter()
            .map(|(_, (to, _))| to.as_str())
            .collect();
        assert_eq!(passed, ["@a@2", "@a@2"], "the release, then u's request");
    }

    #[test]
    fn a_release_before_its_grant_withdraws_the_waiting_request() {
        let mut record = EntityRecord {
            locked_by: Some(holder("t")),
            ..EntityRecord::default()
        };
        let scheduled = schedule(&mut record, vec![lock("u"), unlock("u")].into_iter());
        assert!(scheduled.passed_on.is_empty());
        assert_eq!(record.locked_by, Some(holder("t")));
        assert!(record.deferred.is_empty(), "{:?}", record.deferred);
    }

    /// A generation that locked twice: the release of its second lock,
    /// overtaking that of its first (they travel different paths), only
    /// withdraws the second request; it never frees the first lock.
    #[test]
    fn a_release_frees_only_the_lock_it_names() {
        let lock_of = |task| Sender {
            task_id: Some(task),
            ..holder("t")
        };
        let mut record = EntityRecord {
            locked_by: Some(lock_of(1)),
            ..EntityRecord::default()
        };
        let second = Message::EntityLock {
            holder: lock_of(2),
            targets: vec!["@a@1".into()],
            position: 0,
        };
        let release = |task| Message::EntityUnlock {
            holder: lock_of(task),
            targets: vec!["@a@1".into()],
            position: 0,
        };
        schedule(&mut record, vec![second, release(2)].into_iter());
        assert_eq!(record.locked_by, Some(lock_of(1)));
        assert!(record.deferred.is_empty(), "{:?}", record.deferred);
        schedule(&mut record, vec![release(1)].into_iter());
        assert_eq!(record.locked_by, None);

        // A release stored by an older host names no lock: any of its
        // generation's.
        record.locked_by = Some(lock_of(3));
        let older = Message::EntityUnlock {
            holder: Sender {
                task_id: None,
                ..holder("t")
            },
            targets: vec!["@a@1".into()],
            position: 0,
        };
        schedule(&mut record, vec![older].into_iter());
        assert_eq!(record.locked_by, None);
    }
}
