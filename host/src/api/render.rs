//! The JSON shapes of Durable Functions: the check-status payload, instance
//! status, and history events.

use std::collections::HashMap;

use axum::Json;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};
use serde::Serialize;
use serde_json::{Value, json};
use utoipa::ToSchema;

use crate::model::{HistoryEntry, Instance, InstanceId, Millis};

/// Characters escaped in an instance ID placed in a URL path segment.
const PATH_SEGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'/')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}')
    .add(b'\\')
    .add(b'^')
    .add(b'|');

/// Characters escaped in a query parameter value.
const QUERY_VALUE: &AsciiSet = &PATH_SEGMENT.add(b'&').add(b'=').add(b'+');

/// The management URLs of one instance, built from the request's Host header
/// so they work for whoever asked, and carrying the access key if one is in
/// force so that clients that follow them keep working.
pub(super) struct Links {
    id: String,
    instance: String,
    /// `code=KEY`, URL-encoded.
    code: Option<String>,
}

impl Links {
    pub(super) fn new(headers: &HeaderMap, id: &InstanceId, key: Option<&str>) -> Links {
        let host = headers
            .get(header::HOST)
            .and_then(|value| value.to_str().ok())
            .unwrap_or("localhost");
        Links {
            id: id.as_str().to_owned(),
            instance: format!(
                "http://{host}{}/instances/{}",
                super::BASE_PATH,
                utf8_percent_encode(id.as_str(), PATH_SEGMENT)
            ),
            code: key.map(|key| format!("code={}", utf8_percent_encode(key, QUERY_VALUE))),
        }
    }

    /// `{instance}{path}?{query}`, with the key added to the query.
    fn url(&self, path: &str, query: Option<&str>) -> String {
        let query: Vec<&str> = query.into_iter().chain(self.code.as_deref()).collect();
        if query.is_empty() {
            format!("{}{path}", self.instance)
        } else {
            format!("{}{path}?{}", self.instance, query.join("&"))
        }
    }

    pub(super) fn status_query(&self) -> String {
        self.url("", None)
    }
}

/// The check-status payload: where to manage an instance.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CheckStatus {
    id: String,
    status_query_get_uri: String,
    send_event_post_uri: String,
    terminate_post_uri: String,
    suspend_post_uri: String,
    resume_post_uri: String,
    restart_post_uri: String,
    rewind_post_uri: String,
    purge_history_delete_uri: String,
}

/// An instance's status, as `GET instances/{instanceId}` and `GET instances` show it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InstanceStatus {
    name: String,
    instance_id: String,
    /// Pending, Running, Suspended, Completed, Failed or Terminated.
    #[schema(example = "Running")]
    runtime_status: String,
    /// The current generation's input; left out with `showInput=false`.
    #[serde(skip_serializing_if = "Option::is_none")]
    input: Option<Value>,
    custom_status: Value,
    /// The result, the error, or the termination reason, once finished.
    output: Value,
    #[schema(example = "2026-01-31T12:00:00Z")]
    created_time: String,
    #[schema(example = "2026-01-31T12:00:05Z")]
    last_updated_time: String,
    /// The component version (`sha256:` and the digest of its bytes) the
    /// instance runs on: the one it started on, or the one its last
    /// continue-as-new moved to. Null for instances older than versioning.
    #[schema(example = "sha256:9f2c…")]
    component_version: Option<String>,
    /// With `showHistory=true`: the current generation's history, each
    /// event with `EventType` and `Timestamp`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<Object>>)]
    history_events: Option<Vec<Value>>,
    /// Reprise, with `showReplayHistory=true`: the current generation's
    /// number (continue-as-new and restarts count up), which with the
    /// instance ID seeds the orchestrator's random source.
    #[serde(skip_serializing_if = "Option::is_none")]
    generation: Option<u32>,
    /// Reprise, with `showReplayHistory=true`: the current generation's
    /// history exactly as recorded (its stored form, episode markers
    /// included), for `reprise replay`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<Object>>)]
    replay_history: Option<Vec<HistoryEntry>>,
}

impl InstanceStatus {
    /// Adds what replaying the current generation needs.
    pub(super) fn add_replay_history(&mut self, instance: &Instance, history: Vec<HistoryEntry>) {
        self.generation = Some(instance.generation);
        self.replay_history = Some(history);
    }
}

/// One loaded orchestrator or activity.
#[derive(Debug, Serialize, ToSchema)]
pub struct Function {
    name: String,
    /// `orchestrator` or `activity`.
    #[schema(example = "orchestrator")]
    kind: &'static str,
    /// The component file in the functions folder.
    file: String,
    /// `sha256:` and the digest of the file: which build runs.
    version: String,
}

/// Every function of every loaded file, orchestrators first.
pub(super) fn functions(files: &[crate::runtime::FunctionFile]) -> Vec<Function> {
    let function = |kind, name: &String, file: &crate::runtime::FunctionFile| Function {
        name: name.clone(),
        kind,
        file: file
            .path
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default(),
        version: file.version.clone(),
    };
    let orchestrators = files.iter().flat_map(|file| {
        file.orchestrators
            .iter()
            .map(move |name| function("orchestrator", name, file))
    });
    let activities = files.iter().flat_map(|file| {
        file.activities
            .iter()
            .map(move |name| function("activity", name, file))
    });
    orchestrators.chain(activities).collect()
}

/// What a purge deleted.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Purged {
    instances_deleted: usize,
}

impl Purged {
    pub(super) fn new(instances_deleted: usize) -> Purged {
        Purged { instances_deleted }
    }
}

/// 202 Accepted with `Location` and the check-status payload.
pub(super) fn check_status_response(links: &Links) -> Response {
    let body = CheckStatus {
        id: links.id.clone(),
        status_query_get_uri: links.status_query(),
        send_event_post_uri: links.url("/raiseEvent/{eventName}", None),
        terminate_post_uri: links.url("/terminate", Some("reason={text}")),
        suspend_post_uri: links.url("/suspend", Some("reason={text}")),
        resume_post_uri: links.url("/resume", Some("reason={text}")),
        restart_post_uri: links.url("/restart", None),
        rewind_post_uri: links.url("/rewind", Some("reason={text}")),
        purge_history_delete_uri: links.status_query(),
    };
    (
        StatusCode::ACCEPTED,
        [(header::LOCATION, links.status_query())],
        Json(body),
    )
        .into_response()
}

/// The status payload of `GET instances/{id}`.
pub(super) fn status_body(
    instance: &Instance,
    history: Option<&[HistoryEntry]>,
    show_input: bool,
    show_history_output: bool,
) -> InstanceStatus {
    let mut body = InstanceStatus {
        name: instance.name.clone(),
        instance_id: instance.id.clone(),
        runtime_status: instance.status.as_str().to_owned(),
        input: show_input.then(|| json_value(&instance.input)),
        custom_status: instance
            .custom_status
            .as_deref()
            .map_or(Value::Null, json_value),
        output: instance.output.as_deref().map_or(Value::Null, json_value),
        created_time: timestamp(instance.created_at),
        last_updated_time: timestamp(instance.updated_at),
        component_version: instance.version.clone(),
        history_events: None,
        generation: None,
        replay_history: None,
    };
    if let Some(history) = history {
        let scheduled: HashMap<u64, (&str, Millis)> = history
            .iter()
            .filter_map(|entry| match entry {
                HistoryEntry::TaskScheduled {
                    id,
                    name,
                    timestamp,
                    ..
                } => Some((*id, (name.as_str(), *timestamp))),
                _ => None,
            })
            .collect();
        let events = history
            .iter()
            .filter_map(|entry| history_event(entry, &scheduled))
            .map(|mut event| {
                // Outputs can be large; Durable Functions shows them on request.
                if !show_history_output && let Value::Object(fields) = &mut event {
                    fields.remove("Result");
                }
                event
            })
            .collect::<Vec<_>>();
        body.history_events = Some(events);
    }
    body
}

/// One history entry as Durable Functions shows it; episode markers are
/// internal and left out, as Durable Functions leaves them out. `scheduled`
/// maps task IDs to the activity name and time they were scheduled.
fn history_event(entry: &HistoryEntry, scheduled: &HashMap<u64, (&str, Millis)>) -> Option<Value> {
    let mut event = json!({
        "EventType": entry.event_type(),
        "Timestamp": history_timestamp(entry.timestamp()),
    });
    let fields = event.as_object_mut().expect("built as an object");
    match entry {
        HistoryEntry::OrchestratorStarted { .. } => return None,
        HistoryEntry::ExecutionStarted { name, input, .. } => {
            fields.insert("FunctionName".into(), name.clone().into());
            fields.insert("Input".into(), json_value(input));
        }
        HistoryEntry::EventRaised { name, payload, .. } => {
            fields.insert("Name".into(), name.clone().into());
            fields.insert("Input".into(), json_value(payload));
        }
        HistoryEntry::TimerCreated { id, fire_at, .. } => {
            fields.insert("TimerId".into(), (*id).into());
            fields.insert("FireAt".into(), history_timestamp(*fire_at).into());
        }
        HistoryEntry::TimerFired { id, fire_at, .. } => {
            fields.insert("TimerId".into(), (*id).into());
            fields.insert("FireAt".into(), history_timestamp(*fire_at).into());
        }
        HistoryEntry::TaskScheduled {
            id, name, input, ..
        } => {
            fields.insert("TaskScheduledId".into(), (*id).into());
            fields.insert("FunctionName".into(), name.clone().into());
            fields.insert("Input".into(), json_value(input));
        }
        HistoryEntry::TaskCompleted { id, output, .. }
        | HistoryEntry::TaskFailed {
            id, error: output, ..
        } => {
            fields.insert("TaskScheduledId".into(), (*id).into());
            if let Some((name, scheduled_at)) = scheduled.get(id) {
                fields.insert("FunctionName".into(), (*name).into());
                fields.insert(
                    "ScheduledTime".into(),
                    history_timestamp(*scheduled_at).into(),
                );
            }
            let value = match entry {
                HistoryEntry::TaskCompleted { .. } => json_value(output),
                _ => output.clone().into(),
            };
            fields.insert(
                if matches!(entry, HistoryEntry::TaskCompleted { .. }) {
                    "Result"
                } else {
                    "Reason"
                }
                .into(),
                value,
            );
        }
        HistoryEntry::SubOrchestrationCreated {
            id,
            name,
            instance_id,
            input,
            ..
        } => {
            fields.insert("TaskScheduledId".into(), (*id).into());
            fields.insert("FunctionName".into(), name.clone().into());
            fields.insert("InstanceId".into(), instance_id.clone().into());
            fields.insert("Input".into(), json_value(input));
        }
        HistoryEntry::SubOrchestrationCompleted { id, output, .. } => {
            fields.insert("TaskScheduledId".into(), (*id).into());
            fields.insert("Result".into(), json_value(output));
        }
        HistoryEntry::SubOrchestrationFailed { id, error, .. } => {
            fields.insert("TaskScheduledId".into(), (*id).into());
            fields.insert("Reason".into(), error.clone().into());
        }
        HistoryEntry::EventSent {
            instance_id,
            name,
            payload,
            ..
        } => {
            fields.insert("InstanceId".into(), instance_id.clone().into());
            fields.insert("Name".into(), name.clone().into());
            fields.insert("Input".into(), json_value(payload));
        }
        HistoryEntry::CustomStatusSet { value, .. } => {
            fields.insert("CustomStatus".into(), json_value(value));
        }
        HistoryEntry::ExecutionCompleted { output, .. } => {
            fields.insert("OrchestrationStatus".into(), "Completed".into());
            fields.insert("Result".into(), json_value(output));
        }
        HistoryEntry::ExecutionFailed { error, .. } => {
            fields.insert("OrchestrationStatus".into(), "Failed".into());
            fields.insert("Result".into(), error.clone().into());
        }
        HistoryEntry::ContinuedAsNew { input, .. } => {
            fields.insert("OrchestrationStatus".into(), "ContinuedAsNew".into());
            fields.insert("Result".into(), json_value(input));
        }
        HistoryEntry::ExecutionTerminated { reason, .. } => {
            fields.insert("Input".into(), reason.clone().into());
        }
        HistoryEntry::ExecutionSuspended { reason, .. }
        | HistoryEntry::ExecutionResumed { reason, .. }
        | HistoryEntry::ExecutionRewound { reason, .. } => {
            fields.insert("Reason".into(), reason.clone().into());
        }
    }
    Some(event)
}

/// Stored JSON text as a value; text that is somehow not JSON is shown as a string.
fn json_value(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned()))
}

/// `2017-06-29T18:58:01Z`, the format Durable Functions uses for instance times.
fn timestamp(millis: Millis) -> String {
    let format =
        time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    format_millis(millis, format)
}

/// `2017-06-29T18:58:01.123Z`: history times, precise enough to order events
/// and to see how late a timer fired.
fn history_timestamp(millis: Millis) -> String {
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    format_millis(millis, format)
}

fn format_millis(
    millis: Millis,
    format: &[time::format_description::BorrowedFormatItem<'_>],
) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(millis) * 1_000_000)
        .ok()
        .and_then(|moment| moment.format(format).ok())
        .unwrap_or_default()
}
