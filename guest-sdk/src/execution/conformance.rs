//! Runs the language-neutral conformance cases of `tests/conformance/`:
//! the conformance orchestrators described in its README, implemented
//! here, fed each case's steps; each step's actions compared with the
//! expected ones (JSON payloads compared as values).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Map, Value, json};

use super::{Executor, RunningOrchestrator, run};
use crate::wire::{
    Action, EntityId as WireEntityId, EventRaised, ExecutionStarted, Failure, HistoryEvent,
    TaskCompleted, TaskFailed,
};
use crate::{EntityId, Error, OrchestrationContext, RetryPolicy, when_all};

async fn counter(ctx: OrchestrationContext) -> Result<i64, Error> {
    let count = ctx.input::<Option<i64>>()?.unwrap_or(0);
    let next = match ctx.wait_for_event::<String>("operation").await?.as_str() {
        "incr" => count + 1,
        "decr" => count - 1,
        _ => return Ok(count),
    };
    ctx.continue_as_new(next)?;
    ctx.set_custom_status(next)?;
    Ok(next)
}

async fn two_events(ctx: OrchestrationContext) -> Result<Vec<Value>, Error> {
    let a = ctx.wait_for_event("A").await?;
    let b = ctx.wait_for_event("b").await?;
    Ok(vec![a, b])
}

async fn sequence(ctx: OrchestrationContext) -> Result<Vec<Value>, Error> {
    let mut outputs = Vec::new();
    for item in ctx.input::<Vec<Value>>()? {
        outputs.push(ctx.call_activity("Echo", item).await?);
    }
    Ok(outputs)
}

async fn fan_out(ctx: OrchestrationContext) -> Result<i64, Error> {
    let n: u64 = ctx.input()?;
    let calls = (0..n).map(|i| ctx.call_activity::<i64>("Work", i));
    when_all(calls).await.into_iter().sum()
}

async fn timeout(ctx: OrchestrationContext) -> Result<Option<Value>, Error> {
    ctx.wait_for_event_with_timeout("answer", Duration::from_millis(1000))
        .await
}

async fn entities(ctx: OrchestrationContext) -> Result<Value, Error> {
    let (a, b) = (EntityId::new("account", "a"), EntityId::new("account", "b"));
    let section = ctx
        .lock_entities(&[b.clone(), a.clone(), b.clone()])
        .await?;
    match ctx.call_entity::<Value>(&a, "balance", ()).await {
        Ok(balance) => {
            ctx.signal_entity(&b, "deposit", &balance)?;
            section.release();
            ctx.sleep(Duration::from_millis(100)).await;
            Ok(balance)
        }
        Err(error) => {
            section.release();
            Ok(json!(error.kind()))
        }
    }
}

async fn retry(ctx: OrchestrationContext) -> Result<Value, Error> {
    let policy = RetryPolicy::new(3, Duration::from_millis(100));
    match ctx.call_activity_with_retry("Flaky", (), &policy).await {
        Ok(output) => Ok(output),
        Err(error) => Ok(json!({ "failed": error.kind() })),
    }
}

fn start(name: &str, context: OrchestrationContext) -> Result<RunningOrchestrator, Failure> {
    Ok(match name {
        "Counter" => run(counter, context),
        "TwoEvents" => run(two_events, context),
        "Sequence" => run(sequence, context),
        "FanOut" => run(fan_out, context),
        "Timeout" => run(timeout, context),
        "Entities" => run(entities, context),
        "Retry" => run(retry, context),
        other => panic!("no conformance orchestrator named '{other}'"),
    })
}

fn cases_folder() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/conformance/cases")
}

#[test]
fn every_conformance_case_gives_the_expected_actions() {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(cases_folder())
        .expect("tests/conformance/cases is readable")
        .map(|entry| entry.unwrap().path())
        .filter(|path| {
            path.extension()
                .is_some_and(|extension| extension == "json")
        })
        .collect();
    paths.sort();
    assert!(paths.len() >= 10, "found only {} cases", paths.len());
    for path in paths {
        let text = std::fs::read_to_string(&path).unwrap();
        let case: Value = serde_json::from_str(&text)
            .unwrap_or_else(|error| panic!("{}: {error}", path.display()));
        run_case(&path.file_name().unwrap().to_string_lossy(), &case);
    }
}

fn run_case(file: &str, case: &Value) {
    let name = case["orchestrator"].as_str().expect("orchestrator");
    let input = case["input"].to_string();
    let mut executor = Executor::with_start(name.to_owned(), "instance-1".to_owned(), input, start);
    let steps = case["steps"].as_array().expect("steps");
    for (index, step) in steps.iter().enumerate() {
        let events = step["events"].as_array().expect("events");
        let events = events.iter().map(history_event).collect();
        let replaying = step["replaying"].as_bool().expect("replaying");
        let actions: Vec<Value> = executor
            .step(events, replaying)
            .into_iter()
            .map(action_json)
            .collect();
        assert_eq!(
            Value::Array(actions),
            step["actions"],
            "{file}: step {index}"
        );
    }
}

/// The one member of a case object: its case name and payload.
fn case_of(value: &Value) -> (&str, &Value) {
    let object = value.as_object().expect("an event is an object");
    assert_eq!(object.len(), 1, "an event has one member: {value}");
    let (name, payload) = object.iter().next().unwrap();
    (name, payload)
}

fn history_event(value: &Value) -> HistoryEvent {
    let (case, payload) = case_of(value);
    let id = || payload["id"].as_u64().expect("id");
    match case {
        "execution-started" => HistoryEvent::ExecutionStarted(ExecutionStarted {
            name: text(&payload["name"]),
            instance_id: text(&payload["instance-id"]),
            input: payload["input"].to_string(),
        }),
        "orchestrator-started" => HistoryEvent::OrchestratorStarted(number(payload)),
        "event-raised" => HistoryEvent::EventRaised(EventRaised {
            name: text(&payload["name"]),
            payload: payload["payload"].to_string(),
        }),
        "timer-fired" => HistoryEvent::TimerFired(number(payload)),
        "entities-locked" => HistoryEvent::EntitiesLocked(number(payload)),
        "activity-completed" => HistoryEvent::ActivityCompleted(completed(id(), payload)),
        "sub-orchestration-completed" => {
            HistoryEvent::SubOrchestrationCompleted(completed(id(), payload))
        }
        "entity-call-completed" => HistoryEvent::EntityCallCompleted(completed(id(), payload)),
        "activity-failed" => HistoryEvent::ActivityFailed(task_failed(id(), payload)),
        "sub-orchestration-failed" => {
            HistoryEvent::SubOrchestrationFailed(task_failed(id(), payload))
        }
        "entity-call-failed" => HistoryEvent::EntityCallFailed(task_failed(id(), payload)),
        other => panic!("unknown history event '{other}'"),
    }
}

fn completed(id: u64, payload: &Value) -> TaskCompleted {
    TaskCompleted {
        id,
        output: payload["output"].to_string(),
    }
}

fn task_failed(id: u64, payload: &Value) -> TaskFailed {
    let failure = &payload["failure"];
    TaskFailed {
        id,
        failure: Failure {
            kind: text(&failure["kind"]),
            message: text(&failure["message"]),
            retryable: failure["retryable"].as_bool().expect("retryable"),
        },
    }
}

fn text(value: &Value) -> String {
    value.as_str().expect("a string").to_owned()
}

fn number(value: &Value) -> u64 {
    value.as_u64().expect("a number")
}

/// `action` as the cases write it.
fn action_json(action: Action) -> Value {
    let (case, payload) = match action {
        Action::Complete(output) => ("complete", parse(&output)),
        Action::Fail(failure) => ("fail", failure_json(failure)),
        Action::ContinueAsNew(next) => (
            "continue-as-new",
            json!({
                "input": parse(&next.input),
                "carried-over-events": next.carried_over_events.iter().map(|event| {
                    json!({ "name": event.name, "payload": parse(&event.payload) })
                }).collect::<Vec<_>>(),
            }),
        ),
        Action::SetCustomStatus(status) => ("set-custom-status", parse(&status)),
        Action::CreateTimer(timer) => (
            "create-timer",
            json!({ "id": timer.id, "fire-at": timer.fire_at }),
        ),
        Action::CancelTimer(id) => ("cancel-timer", json!(id)),
        Action::ScheduleActivity(activity) => (
            "schedule-activity",
            json!({
                "id": activity.id,
                "name": activity.name,
                "input": parse(&activity.input),
                "attempt": activity.attempt,
            }),
        ),
        Action::StartSubOrchestration(child) => (
            "start-sub-orchestration",
            json!({
                "id": child.id,
                "name": child.name,
                "instance-id": child.instance_id,
                "input": parse(&child.input),
            }),
        ),
        Action::StartOrchestration(start) => (
            "start-orchestration",
            json!({
                "name": start.name,
                "instance-id": start.instance_id,
                "input": parse(&start.input),
            }),
        ),
        Action::SendEvent(event) => (
            "send-event",
            json!({
                "instance-id": event.instance_id,
                "name": event.name,
                "payload": parse(&event.payload),
            }),
        ),
        Action::SignalEntity(signal) => (
            "signal-entity",
            json!({
                "target": entity_json(&signal.target),
                "operation": signal.operation,
                "input": parse(&signal.input),
            }),
        ),
        Action::CallEntity(call) => (
            "call-entity",
            json!({
                "id": call.id,
                "target": entity_json(&call.target),
                "operation": call.operation,
                "input": parse(&call.input),
            }),
        ),
        Action::LockEntities(lock) => (
            "lock-entities",
            json!({
                "id": lock.id,
                "targets": lock.targets.iter().map(entity_json).collect::<Vec<_>>(),
            }),
        ),
        Action::UnlockEntities => return json!("unlock-entities"),
    };
    Value::Object(Map::from_iter([(case.to_owned(), payload)]))
}

fn failure_json(failure: Failure) -> Value {
    json!({ "kind": failure.kind, "message": failure.message, "retryable": failure.retryable })
}

fn entity_json(id: &WireEntityId) -> Value {
    json!({ "name": id.name, "key": id.key })
}

fn parse(json: &str) -> Value {
    serde_json::from_str(json).expect("the SDK writes JSON")
}
