//! The history as Durable Functions shows it (`showHistory=true`): one
//! entry per step of the current generation, in order. A finished activity
//! or sub-orchestration is one entry, its completion, carrying the name,
//! input and time it was scheduled; a step still running shows as its
//! scheduling entry. A failed or continued generation ends with
//! `ExecutionCompleted` and its `OrchestrationStatus`. Episode markers and
//! custom status changes are internal (the status has `customStatus`).

use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value};

use super::render::{format_millis, json_value};
use crate::model::{FailureDetails, HistoryEntry, Instance, Millis, ParentTask};

/// The `historyEvents` of `instance`'s current generation. Without
/// `show_input`, no `Input` fields; without `show_output`, no `Result`
/// fields (outputs can be large).
pub(super) fn events(
    instance: &Instance,
    history: &[HistoryEntry],
    show_input: bool,
    show_output: bool,
) -> Vec<Value> {
    let steps = Steps::of(instance, history);
    history
        .iter()
        .filter_map(|entry| event(entry, &steps))
        .map(|mut event| {
            if !show_output {
                event.remove("Result");
            }
            if !show_input {
                event.remove("Input");
            }
            Value::Object(event)
        })
        .collect()
}

/// The activities and sub-orchestrations of a history: how each was
/// scheduled, and which have finished.
struct Steps<'a> {
    scheduled: HashMap<u64, Scheduled<'a>>,
    finished: HashSet<u64>,
}

struct Scheduled<'a> {
    name: &'a str,
    input: &'a str,
    at: Millis,
    /// A sub-orchestration's instance.
    child: Option<String>,
}

impl<'a> Steps<'a> {
    fn of(instance: &Instance, history: &'a [HistoryEntry]) -> Steps<'a> {
        let mut steps = Steps {
            scheduled: HashMap::new(),
            finished: HashSet::new(),
        };
        for entry in history {
            match entry {
                HistoryEntry::TaskScheduled {
                    id,
                    name,
                    input,
                    timestamp,
                    ..
                } => {
                    let scheduled = Scheduled {
                        name,
                        input,
                        at: *timestamp,
                        child: None,
                    };
                    steps.scheduled.insert(*id, scheduled);
                }
                HistoryEntry::SubOrchestrationCreated {
                    id,
                    name,
                    input,
                    timestamp,
                    instance_id,
                    ..
                } => {
                    let scheduled = Scheduled {
                        name,
                        input,
                        at: *timestamp,
                        child: Some(child_id(instance, *id, instance_id.as_deref())),
                    };
                    steps.scheduled.insert(*id, scheduled);
                }
                HistoryEntry::TaskCompleted { id, .. }
                | HistoryEntry::TaskFailed { id, .. }
                | HistoryEntry::SubOrchestrationCompleted { id, .. }
                | HistoryEntry::SubOrchestrationFailed { id, .. } => {
                    steps.finished.insert(*id);
                }
                _ => {}
            }
        }
        steps
    }

    /// Adds what the step `id` was scheduled with to its completion.
    fn describe(&self, id: u64, fields: &mut Map<String, Value>) {
        if let Some(scheduled) = self.scheduled.get(&id) {
            fields.insert("FunctionName".into(), scheduled.name.into());
            fields.insert("ScheduledTime".into(), timestamp(scheduled.at).into());
            fields.insert("Input".into(), json_value(scheduled.input));
            // Reprise's: which instance the finished child was.
            if let Some(child) = &scheduled.child {
                fields.insert("InstanceId".into(), child.clone().into());
            }
        }
    }
}

/// The instance a sub-orchestration task `task_id` of `instance` started:
/// the one its orchestrator named, or the one the host made up.
fn child_id(instance: &Instance, task_id: u64, named: Option<&str>) -> String {
    match named {
        Some(named) => named.to_owned(),
        None => ParentTask {
            instance_id: instance.id.clone(),
            generation: instance.generation,
            task_id,
        }
        .default_child_id(),
    }
}

/// One entry, or `None` for what Durable Functions does not show.
fn event(entry: &HistoryEntry, steps: &Steps) -> Option<Map<String, Value>> {
    let mut fields = Map::new();
    fields.insert("EventType".into(), entry.event_type().into());
    fields.insert("Timestamp".into(), timestamp(entry.timestamp()).into());
    let mut add = |name: &str, value: Value| {
        fields.insert(name.into(), value);
    };
    match entry {
        HistoryEntry::OrchestratorStarted { .. } | HistoryEntry::CustomStatusSet { .. } => {
            return None;
        }
        HistoryEntry::TaskScheduled { id, .. }
        | HistoryEntry::SubOrchestrationCreated { id, .. }
            if steps.finished.contains(id) =>
        {
            return None;
        }
        HistoryEntry::ExecutionStarted { name, input, .. } => {
            add("FunctionName", name.clone().into());
            add("Input", json_value(input));
        }
        HistoryEntry::EventRaised { name, payload, .. } => {
            add("Name", name.clone().into());
            add("Input", json_value(payload));
        }
        HistoryEntry::TimerCreated { id, fire_at, .. }
        | HistoryEntry::TimerFired { id, fire_at, .. } => {
            add("TimerId", (*id).into());
            add("FireAt", timestamp(*fire_at).into());
        }
        HistoryEntry::TaskScheduled {
            id, name, input, ..
        } => {
            add("TaskScheduledId", (*id).into());
            add("FunctionName", name.clone().into());
            add("Input", json_value(input));
        }
        HistoryEntry::SubOrchestrationCreated {
            id,
            name,
            instance_id,
            input,
            ..
        } => {
            add("TaskScheduledId", (*id).into());
            add("FunctionName", name.clone().into());
            let child = steps.scheduled.get(id).and_then(|step| step.child.clone());
            add("InstanceId", child.or_else(|| instance_id.clone()).into());
            add("Input", json_value(input));
        }
        HistoryEntry::TaskCompleted { id, output, .. }
        | HistoryEntry::SubOrchestrationCompleted { id, output, .. } => {
            add("TaskScheduledId", (*id).into());
            add("Result", json_value(output));
            steps.describe(*id, &mut fields);
        }
        HistoryEntry::TaskFailed {
            id, error, details, ..
        }
        | HistoryEntry::SubOrchestrationFailed {
            id, error, details, ..
        } => {
            add("TaskScheduledId", (*id).into());
            add("Reason", error.clone().into());
            if let Some(details) = details {
                add("FailureDetails", failure_details(error, details));
            }
            steps.describe(*id, &mut fields);
        }
        HistoryEntry::TimerCancelled { id, .. } => {
            add("TimerId", (*id).into());
        }
        HistoryEntry::OrchestrationStarted {
            name,
            instance_id,
            input,
            ..
        } => {
            add("FunctionName", name.clone().into());
            add("InstanceId", instance_id.clone().into());
            add("Input", json_value(input));
        }
        HistoryEntry::EventSent {
            instance_id,
            name,
            payload,
            ..
        } => {
            add("InstanceId", instance_id.clone().into());
            add("Name", name.clone().into());
            add("Input", json_value(payload));
        }
        HistoryEntry::ExecutionCompleted { output, .. } => {
            add("OrchestrationStatus", "Completed".into());
            add("Result", json_value(output));
        }
        HistoryEntry::ExecutionFailed { error, details, .. } => {
            fields.insert("EventType".into(), "ExecutionCompleted".into());
            fields.insert("OrchestrationStatus".into(), "Failed".into());
            fields.insert("Result".into(), error.clone().into());
            if let Some(details) = details {
                let details = failure_details(error, details);
                fields.insert("FailureDetails".into(), details);
            }
        }
        HistoryEntry::ContinuedAsNew { input, .. } => {
            fields.insert("EventType".into(), "ExecutionCompleted".into());
            fields.insert("OrchestrationStatus".into(), "ContinuedAsNew".into());
            fields.insert("Result".into(), json_value(input));
        }
        HistoryEntry::ExecutionTerminated { reason, .. } => {
            add("Input", reason.clone().into());
        }
        HistoryEntry::ExecutionSuspended { reason, .. }
        | HistoryEntry::ExecutionResumed { reason, .. }
        | HistoryEntry::ExecutionRewound { reason, .. } => {
            add("Reason", reason.clone().into());
        }
        HistoryEntry::EntitySignaled {
            target,
            operation,
            input,
            ..
        } => {
            add("InstanceId", target.clone().into());
            add("Name", operation.clone().into());
            add("Input", json_value(input));
        }
        HistoryEntry::EntityCalled {
            id,
            target,
            operation,
            input,
            ..
        } => {
            add("TaskScheduledId", (*id).into());
            add("InstanceId", target.clone().into());
            add("Name", operation.clone().into());
            add("Input", json_value(input));
        }
        HistoryEntry::EntityLockRequested { id, targets, .. } => {
            add("TaskScheduledId", (*id).into());
            add("Entities", targets.clone().into());
        }
        HistoryEntry::EntitiesLocked { id, .. } => {
            add("TaskScheduledId", (*id).into());
        }
        HistoryEntry::EntityCallCompleted { id, output, .. } => {
            add("TaskScheduledId", (*id).into());
            add("Result", json_value(output));
        }
        HistoryEntry::EntityCallFailed {
            id, error, details, ..
        } => {
            add("TaskScheduledId", (*id).into());
            add("Reason", error.clone().into());
            add("FailureDetails", failure_details(error, details));
        }
        HistoryEntry::EntitiesUnlocked { .. } => {}
        // An entity's record is shown by the entity routes.
        HistoryEntry::EntityState { .. } => return None,
    }
    Some(fields)
}

/// A failure as the Durable Functions SDKs' `FailureDetails` show it.
fn failure_details(message: &str, details: &FailureDetails) -> Value {
    serde_json::json!({
        "ErrorType": details.kind,
        "ErrorMessage": message,
        "IsNonRetriable": !details.retryable,
    })
}

/// `2017-06-29T18:58:01.123Z`: history times, precise enough to order events
/// and to see how late a timer fired.
fn timestamp(millis: Millis) -> String {
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    format_millis(millis, format)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::RuntimeStatus;

    /// The instance whose history the tests render.
    fn instance() -> Instance {
        Instance {
            id: "parent".into(),
            name: "Parent".into(),
            status: RuntimeStatus::Running,
            generation: 2,
            input: "null".into(),
            original_input: "null".into(),
            output: None,
            custom_status: None,
            created_at: 0,
            updated_at: 0,
            parent: None,
            version: None,
            revision: 0,
            trace: None,
        }
    }

    /// A child's entries name its instance, as the orchestrator named it
    /// or as the host made it up, whether it runs or finished.
    #[test]
    fn a_sub_orchestration_names_its_child_running_or_finished() {
        let created = |id, instance_id: Option<&str>| HistoryEntry::SubOrchestrationCreated {
            id,
            name: "Child".into(),
            instance_id: instance_id.map(str::to_owned),
            input: "1".into(),
            timestamp: 1,
        };
        let history = [
            created(0, None),
            created(1, Some("named")),
            HistoryEntry::SubOrchestrationCompleted {
                id: 0,
                output: "2".into(),
                timestamp: 3,
            },
        ];
        let events = events(&instance(), &history, true, true);
        assert_eq!(
            types(&events),
            [
                "SubOrchestrationInstanceCreated",
                "SubOrchestrationInstanceCompleted"
            ]
        );
        assert_eq!(events[0]["InstanceId"], "named");
        assert_eq!(events[1]["InstanceId"], "parent:2:0");
    }

    fn types(events: &[Value]) -> Vec<&str> {
        events
            .iter()
            .map(|event| event["EventType"].as_str().unwrap())
            .collect()
    }

    #[test]
    fn a_finished_step_is_its_completion_and_a_running_one_its_scheduling() {
        let history = [
            HistoryEntry::ExecutionStarted {
                name: "Seq".into(),
                input: "null".into(),
                timestamp: 1_000,
            },
            HistoryEntry::TaskScheduled {
                id: 0,
                name: "Hello".into(),
                input: r#""Tokyo""#.into(),
                attempt: 1,
                timestamp: 1_001,
            },
            HistoryEntry::CustomStatusSet {
                value: "1".into(),
                timestamp: 1_001,
            },
            HistoryEntry::TaskCompleted {
                id: 0,
                output: r#""Hello Tokyo!""#.into(),
                timestamp: 1_500,
            },
            HistoryEntry::TaskScheduled {
                id: 1,
                name: "Hello".into(),
                input: r#""London""#.into(),
                attempt: 1,
                timestamp: 1_501,
            },
        ];
        let events = events(&instance(), &history, true, true);
        assert_eq!(
            types(&events),
            ["ExecutionStarted", "TaskCompleted", "TaskScheduled"]
        );
        let completed = &events[1];
        assert_eq!(completed["FunctionName"], "Hello");
        assert_eq!(completed["Input"], "Tokyo");
        assert_eq!(completed["Result"], "Hello Tokyo!");
        assert_eq!(completed["ScheduledTime"], "1970-01-01T00:00:01.001Z");
        assert_eq!(events[2]["Input"], "London");

        let trimmed = super::events(&instance(), &history, false, false);
        assert!(trimmed.iter().all(|event| event.get("Input").is_none()));
        assert!(trimmed.iter().all(|event| event.get("Result").is_none()));
    }

    #[test]
    fn a_failed_or_continued_generation_ends_with_execution_completed() {
        let failed = HistoryEntry::ExecutionFailed {
            error: "boom".into(),
            timestamp: 5,
            details: Some(FailureDetails {
                kind: "validation".into(),
                retryable: false,
            }),
        };
        let continued = HistoryEntry::ContinuedAsNew {
            input: "3".into(),
            timestamp: 6,
        };
        let events = events(&instance(), &[failed, continued], true, true);
        assert_eq!(types(&events), ["ExecutionCompleted", "ExecutionCompleted"]);
        assert_eq!(events[0]["OrchestrationStatus"], "Failed");
        assert_eq!(events[0]["Result"], "boom");
        assert_eq!(
            events[0]["FailureDetails"],
            serde_json::json!({
                "ErrorType": "validation",
                "ErrorMessage": "boom",
                "IsNonRetriable": true,
            })
        );
        assert_eq!(events[1]["OrchestrationStatus"], "ContinuedAsNew");
        assert_eq!(events[1]["Result"], 3);
    }
}
