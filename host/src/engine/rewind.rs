//! Rewind: a failed instance resumes from its last good point.
//!
//! The history is cut at the start of the episode that saw the first
//! failure. What arrived from outside after the cut (events, activity
//! results, fired timers, sub-orchestration results) is queued again in
//! order (results only of tasks the kept history started: the re-run takes
//! the cut actions again); failed activities are not, so they run again;
//! activities and timers the kept history still waits for are scheduled
//! again. Like any re-run, it repeats the cut actions' effects: activities
//! run again, events are sent again. A `Rewind`
//! message makes the orchestrator run at once. Everything commits in one
//! episode transaction, refused if the instance changed meanwhile.

use std::collections::HashSet;

use crate::model::{Failure, HistoryEntry, Instance, Message, Millis, RuntimeStatus};
use crate::store::{ActivityLease, EpisodeCommit, HistoryChange, ScheduledActivity};

/// Whether a generation's `history` called or locked entities: not
/// rewound, since their answers and locks cannot be had again (signals, fire
/// and forget, are sent again like events).
pub(super) fn used_entities(history: &[HistoryEntry]) -> bool {
    history.iter().any(|entry| {
        matches!(
            entry,
            HistoryEntry::EntityCalled { .. } | HistoryEntry::EntityLockRequested { .. }
        )
    })
}

/// The commit that rewinds `instance` (which must have failed).
pub(super) fn plan(
    instance: Instance,
    history: Vec<HistoryEntry>,
    reason: String,
    now: Millis,
) -> EpisodeCommit {
    let generation = instance.generation;
    let is_failure = |entry: &HistoryEntry| {
        matches!(
            entry,
            HistoryEntry::TaskFailed { .. }
                | HistoryEntry::SubOrchestrationFailed { .. }
                | HistoryEntry::ExecutionFailed { .. }
        )
    };
    let first_failure = history.iter().position(is_failure).unwrap_or(history.len());
    let cut = history[..first_failure]
        .iter()
        .rposition(|entry| matches!(entry, HistoryEntry::OrchestratorStarted { .. }))
        .unwrap_or(first_failure);
    let (kept, removed) = history.split_at(cut);

    // Results are queued again only for tasks the kept history started:
    // the re-run takes the cut actions again, and they produce their own.
    let mut started = HashSet::new();
    for entry in kept {
        if let HistoryEntry::TaskScheduled { id, .. }
        | HistoryEntry::TimerCreated { id, .. }
        | HistoryEntry::SubOrchestrationCreated { id, .. } = entry
        {
            started.insert(*id);
        }
    }
    let mut requeued = vec![Message::Rewind { reason }];
    for entry in removed {
        let is_result_of_cut_task = match entry {
            HistoryEntry::TaskCompleted { id, .. }
            | HistoryEntry::TimerFired { id, .. }
            | HistoryEntry::SubOrchestrationCompleted { id, .. }
            | HistoryEntry::SubOrchestrationFailed { id, .. } => !started.contains(id),
            _ => false,
        };
        if is_result_of_cut_task {
            continue;
        }
        requeued.extend(match entry.clone() {
            HistoryEntry::EventRaised {
                timestamp,
                name,
                payload,
            } => Some(Message::Event {
                name,
                payload,
                accepted_at: timestamp,
            }),
            HistoryEntry::TaskCompleted { id, output, .. } => Some(Message::ActivityDone {
                generation,
                id,
                result: Ok(output),
            }),
            HistoryEntry::TimerFired { id, fire_at, .. } => Some(Message::TimerFired {
                generation,
                id,
                fire_at,
            }),
            HistoryEntry::SubOrchestrationCompleted { id, output, .. } => {
                Some(Message::SubOrchestrationDone {
                    generation,
                    id,
                    result: Ok(output),
                })
            }
            // A failed child is not run again; its failure stands.
            HistoryEntry::SubOrchestrationFailed {
                id, error, details, ..
            } => Some(Message::SubOrchestrationDone {
                generation,
                id,
                result: Err(Failure::recorded(&error, details.as_ref())),
            }),
            // Failed activities run again; actions are taken again by the
            // orchestrator as it replays.
            _ => None,
        });
    }

    // What the kept history waits for, and nothing will deliver: the queue
    // rows of a failed instance were dropped.
    let mut delivered = HashSet::new();
    for message in &requeued {
        if let Message::ActivityDone { id, .. } | Message::TimerFired { id, .. } = message {
            delivered.insert(*id);
        }
    }
    for entry in kept {
        // A cancelled timer never fires: not set again either.
        if let HistoryEntry::TaskCompleted { id, .. }
        | HistoryEntry::TimerFired { id, .. }
        | HistoryEntry::TimerCancelled { id, .. } = entry
        {
            delivered.insert(*id);
        }
    }
    let mut activities = Vec::new();
    let mut timers = Vec::new();
    for entry in kept {
        match entry {
            HistoryEntry::TaskScheduled {
                id,
                name,
                input,
                attempt,
                ..
            } if !delivered.contains(id) => activities.push(ScheduledActivity {
                task_id: *id,
                name: name.clone(),
                input: input.clone(),
                attempt: *attempt,
            }),
            HistoryEntry::TimerCreated { id, fire_at, .. } if !delivered.contains(id) => {
                timers.push((*id, *fire_at))
            }
            _ => {}
        }
    }

    let mut updated = instance.successor(now);
    updated.status = RuntimeStatus::Running;
    updated.output = None;
    EpisodeCommit {
        read: instance,
        updated,
        history: HistoryChange::Replace(kept.to_vec()),
        consumed: Vec::new(),
        timers,
        activities,
        lease: ActivityLease::default(),
        children: Vec::new(),
        sent_events: Vec::new(),
        messages: Vec::new(),
        removes_empty_entity: false,
        cancelled_timers: Vec::new(),
        requeued,
        staging: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generation_that_called_or_locked_entities_is_not_rewound() {
        let signal = HistoryEntry::EntitySignaled {
            timestamp: 1,
            target: "@counter@x".into(),
            operation: "add".into(),
            input: "1".into(),
        };
        assert!(!used_entities(std::slice::from_ref(&signal)));
        let lock = HistoryEntry::EntityLockRequested {
            timestamp: 1,
            id: 2,
            targets: vec!["@counter@x".into()],
        };
        assert!(used_entities(&[signal, lock]));
    }

    fn failed_instance() -> Instance {
        Instance {
            id: "i".into(),
            name: "Chain".into(),
            status: RuntimeStatus::Failed,
            generation: 0,
            input: "null".into(),
            original_input: "null".into(),
            output: Some("\"boom\"".into()),
            custom_status: None,
            created_at: 1,
            updated_at: 9,
            parent: None,
            version: None,
            revision: 3,
            trace: None,
        }
    }

    #[test]
    fn the_failed_episode_is_cut_and_what_arrived_in_it_is_queued_again() {
        let scheduled = |id: u64| HistoryEntry::TaskScheduled {
            timestamp: 2,
            id,
            name: "Step".into(),
            input: id.to_string(),
            attempt: 2,
        };
        let history = vec![
            HistoryEntry::ExecutionStarted {
                timestamp: 1,
                name: "Chain".into(),
                input: "null".into(),
            },
            HistoryEntry::OrchestratorStarted { timestamp: 1 },
            scheduled(0),
            scheduled(1),
            HistoryEntry::TimerCreated {
                timestamp: 1,
                id: 2,
                fire_at: 100,
            },
            HistoryEntry::OrchestratorStarted { timestamp: 5 },
            HistoryEntry::EventRaised {
                timestamp: 4,
                name: "go".into(),
                payload: "1".into(),
            },
            HistoryEntry::TaskCompleted {
                timestamp: 5,
                id: 0,
                output: "0".into(),
            },
            HistoryEntry::TaskFailed {
                timestamp: 5,
                id: 1,
                error: "boom".into(),
                details: None,
            },
            // The orchestrator caught the failure and went on; the re-run
            // will schedule task 3 again, so its old result is not queued.
            scheduled(3),
            HistoryEntry::OrchestratorStarted { timestamp: 6 },
            HistoryEntry::TaskCompleted {
                timestamp: 6,
                id: 3,
                output: "3".into(),
            },
            HistoryEntry::ExecutionFailed {
                timestamp: 5,
                error: "boom".into(),
                details: None,
            },
        ];
        let commit = plan(failed_instance(), history.clone(), "fixed".into(), 10);
        let HistoryChange::Replace(kept) = &commit.history else {
            panic!("a rewind replaces the history");
        };
        assert_eq!(kept.as_slice(), &history[..5]);
        assert_eq!(
            commit.requeued,
            [
                Message::Rewind {
                    reason: "fixed".into()
                },
                Message::Event {
                    name: "go".into(),
                    payload: "1".into(),
                    accepted_at: 4
                },
                Message::ActivityDone {
                    generation: 0,
                    id: 0,
                    result: Ok("0".into())
                },
            ]
        );
        // Task 1 failed: it runs again. Task 0's result is queued again.
        let again = ScheduledActivity {
            task_id: 1,
            name: "Step".into(),
            input: "1".into(),
            attempt: 2,
        };
        assert_eq!(commit.activities, [again]);
        assert_eq!(commit.timers, [(2, 100)]);
        assert_eq!(commit.updated.status, RuntimeStatus::Running);
        assert_eq!(commit.updated.output, None);
    }
}
