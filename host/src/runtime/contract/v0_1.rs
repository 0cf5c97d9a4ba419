//! Speaking 0.1.0: the current version's values converted to and from it.
//!
//! 0.1.0 is a subset of the current version: every action a 0.1.0 guest
//! takes has a current form, and the events it can be sent are those its
//! actions lead to. What 0.1.0 lacks comes out as the current version's
//! defaults: a failure is of kind `error` and retryable, an activity is
//! attempt 1.

use super::archived_0_1::orchestrations::reprise::orchestration::types as old;
use super::wire;

/// The kind of a failure a 0.1.0 guest reports (it has only a message).
const GUEST_FAILURE: &str = "error";

/// `events` as 0.1.0 has them. Events 0.1.0 has no case for (entity
/// results) cannot arise: they answer actions a 0.1.0 guest cannot take;
/// they are left out.
pub(super) fn events(events: &[wire::HistoryEvent]) -> Vec<old::HistoryEvent> {
    events.iter().filter_map(event).collect()
}

fn event(event: &wire::HistoryEvent) -> Option<old::HistoryEvent> {
    use wire::HistoryEvent as New;
    Some(match event {
        New::ExecutionStarted(started) => {
            old::HistoryEvent::ExecutionStarted(old::ExecutionStarted {
                name: started.name.clone(),
                instance_id: started.instance_id.clone(),
                input: started.input.clone(),
            })
        }
        New::OrchestratorStarted(timestamp) => old::HistoryEvent::OrchestratorStarted(*timestamp),
        New::EventRaised(raised) => old::HistoryEvent::EventRaised(old::EventRaised {
            name: raised.name.clone(),
            payload: raised.payload.clone(),
        }),
        New::TimerFired(id) => old::HistoryEvent::TimerFired(*id),
        New::ActivityCompleted(done) => old::HistoryEvent::ActivityCompleted(completed(done)),
        New::ActivityFailed(failed) => old::HistoryEvent::ActivityFailed(task_failed(failed)),
        New::SubOrchestrationCompleted(done) => {
            old::HistoryEvent::SubOrchestrationCompleted(completed(done))
        }
        New::SubOrchestrationFailed(failed) => {
            old::HistoryEvent::SubOrchestrationFailed(task_failed(failed))
        }
        New::EntityCallCompleted(_) | New::EntityCallFailed(_) | New::EntitiesLocked(_) => {
            return None;
        }
    })
}

fn completed(done: &wire::TaskCompleted) -> old::TaskCompleted {
    old::TaskCompleted {
        id: done.id,
        output: done.output.clone(),
    }
}

fn task_failed(failed: &wire::TaskFailed) -> old::TaskFailed {
    old::TaskFailed {
        id: failed.id,
        error: failed.failure.message.clone(),
    }
}

/// A 0.1.0 guest's action in the current version.
pub(super) fn action(action: old::Action) -> wire::Action {
    match action {
        old::Action::Complete(output) => wire::Action::Complete(output),
        old::Action::Fail(message) => wire::Action::Fail(failure(message)),
        old::Action::ContinueAsNew(next) => wire::Action::ContinueAsNew(wire::ContinueAsNew {
            input: next.input,
            carried_over_events: next
                .carried_over_events
                .into_iter()
                .map(|event| wire::EventRaised {
                    name: event.name,
                    payload: event.payload,
                })
                .collect(),
        }),
        old::Action::SetCustomStatus(value) => wire::Action::SetCustomStatus(value),
        old::Action::CreateTimer(timer) => wire::Action::CreateTimer(wire::CreateTimer {
            id: timer.id,
            fire_at: timer.fire_at,
        }),
        old::Action::ScheduleActivity(activity) => {
            wire::Action::ScheduleActivity(wire::ScheduleActivity {
                id: activity.id,
                name: activity.name,
                input: activity.input,
                attempt: 1,
            })
        }
        old::Action::StartSubOrchestration(child) => {
            wire::Action::StartSubOrchestration(wire::StartSubOrchestration {
                id: child.id,
                name: child.name,
                instance_id: child.instance_id,
                input: child.input,
            })
        }
        old::Action::SendEvent(event) => wire::Action::SendEvent(wire::SendEvent {
            instance_id: event.instance_id,
            name: event.name,
            payload: event.payload,
        }),
    }
}

/// A 0.1.0 guest's error message as a failure.
pub(super) fn failure(message: String) -> wire::Failure {
    wire::Failure {
        kind: GUEST_FAILURE.to_owned(),
        message,
        retryable: true,
    }
}
