//! The JSON shapes of Durable Functions: the check-status payload, instance
//! status, the client binding (history events: `history.rs`).

use axum::Json;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};
use serde::Serialize;
use serde_json::Value;
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

/// Characters escaped in the password of a URL: all but the unreserved.
const USERINFO: &AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Characters escaped in a query parameter value.
const QUERY_VALUE: &AsciiSet = &PATH_SEGMENT.add(b'&').add(b'=').add(b'+');

/// The management URLs of one instance, built from the request's Host header
/// so they work for whoever asked, and carrying the access key if one is in
/// force so that clients that follow them keep working.
pub(super) struct Links {
    id: String,
    /// `http://{host}{BASE_PATH}`.
    base: String,
    instance: String,
    /// `taskHub=…` and `code=…` as they apply, URL-encoded.
    parameters: Vec<String>,
}

impl Links {
    pub(super) fn new(headers: &HeaderMap, id: &InstanceId, key: Option<&str>) -> Links {
        Links::for_id(headers, id.as_str(), key)
    }

    fn for_id(headers: &HeaderMap, id: &str, key: Option<&str>) -> Links {
        let host = headers
            .get(header::HOST)
            .and_then(|value| value.to_str().ok())
            .unwrap_or("localhost");
        let base = format!("http://{host}{}", super::BASE_PATH);
        Links {
            id: id.to_owned(),
            instance: format!("{base}/instances/{}", utf8_percent_encode(id, PATH_SEGMENT)),
            base,
            parameters: key
                .map(|key| format!("code={}", utf8_percent_encode(key, QUERY_VALUE)))
                .into_iter()
                .collect(),
        }
    }

    /// `{instance}{path}?{query}`, with the key added to the query.
    fn url(&self, path: &str, query: Option<&str>) -> String {
        format!("{}{path}{}", self.instance, self.query(query))
    }

    /// `?{query}&{parameters}`, or nothing when both are empty.
    fn query(&self, query: Option<&str>) -> String {
        let query: Vec<&str> = query
            .into_iter()
            .chain(self.parameters.iter().map(String::as_str))
            .collect();
        if query.is_empty() {
            String::new()
        } else {
            format!("?{}", query.join("&"))
        }
    }

    pub(super) fn status_query(&self) -> String {
        self.url("", None)
    }

    /// Every URL of the instance.
    fn check_status(&self) -> CheckStatus {
        CheckStatus {
            id: self.id.clone(),
            status_query_get_uri: self.status_query(),
            send_event_post_uri: self.url("/raiseEvent/{eventName}", None),
            terminate_post_uri: self.url("/terminate", Some("reason={text}")),
            suspend_post_uri: self.url("/suspend", Some("reason={text}")),
            resume_post_uri: self.url("/resume", Some("reason={text}")),
            restart_post_uri: self.url("/restart", None),
            rewind_post_uri: self.url("/rewind", Some("reason={text}")),
            purge_history_delete_uri: self.status_query(),
        }
    }
}

/// What a Durable Functions client is constructed from: the `durableClient`
/// binding data the Azure Functions host gives a function, here served by
/// the host itself (`GET durableClient`).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClientBinding {
    task_hub_name: String,
    creation_urls: CreationUrls,
    /// The URLs of the instance `INSTANCEID`, as templates.
    management_urls: CheckStatus,
    #[schema(example = "http://127.0.0.1:7071/runtime/webhooks/durabletask")]
    base_url: String,
    /// `taskHub=…`, and `code=…` with an access key.
    required_query_string_parameters: String,
    /// Where the clients send their requests: the base URL with a trailing
    /// `/`, and with an access key the key as its password
    /// (`http://reprise:KEY@host/...`), since the clients add no query
    /// string to it.
    rpc_base_url: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct CreationUrls {
    create_new_instance_post_uri: String,
    create_and_wait_on_new_instance_post_uri: String,
}

impl ClientBinding {
    /// The binding for whoever asked (their Host header), with the task hub
    /// and access key every URL needs.
    pub(super) fn new(headers: &HeaderMap, task_hub: &str, key: Option<&str>) -> ClientBinding {
        let mut links = Links::for_id(headers, "INSTANCEID", key);
        let hub = format!("taskHub={}", utf8_percent_encode(task_hub, QUERY_VALUE));
        links.parameters.insert(0, hub);
        let orchestrators = format!(
            "{}/orchestrators/{{functionName}}[/{{instanceId}}]",
            links.base
        );
        ClientBinding {
            task_hub_name: task_hub.to_owned(),
            creation_urls: CreationUrls {
                create_new_instance_post_uri: format!("{orchestrators}{}", links.query(None)),
                create_and_wait_on_new_instance_post_uri: format!(
                    "{orchestrators}{}",
                    links.query(Some(
                        "timeout={timeoutInSeconds}&pollingInterval={intervalInSeconds}"
                    ))
                ),
            },
            management_urls: links.check_status(),
            required_query_string_parameters: links.parameters.join("&"),
            rpc_base_url: match key {
                Some(key) => format!(
                    "{}/",
                    links.base.replacen(
                        "http://",
                        &format!("http://reprise:{}@", utf8_percent_encode(key, USERINFO)),
                        1
                    )
                ),
                None => format!("{}/", links.base),
            },
            base_url: links.base,
        }
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
    /// The current generation's input; null with `showInput=false`.
    input: Value,
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
    /// `orchestrator`, `activity` or `entity`.
    #[schema(example = "orchestrator")]
    kind: &'static str,
    /// The component file in the functions folder.
    file: String,
    /// `sha256:` and the digest of the file: which build runs.
    version: String,
    /// The version of the WIT package `reprise:orchestration` the build
    /// was made against.
    #[schema(example = "0.2.0")]
    contract: &'static str,
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
        contract: file.contract,
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
    let entities = files.iter().flat_map(|file| {
        file.entities
            .iter()
            .map(move |name| function("entity", name, file))
    });
    orchestrators.chain(activities).chain(entities).collect()
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

/// Seconds a client is asked to wait before it asks again (`Retry-After`):
/// instances usually finish in milliseconds.
pub(super) const RETRY_AFTER: &str = "1";

/// 202 Accepted with `Location`, `Retry-After` and the check-status payload.
pub(super) fn check_status_response(links: &Links) -> Response {
    accepted(links, Json(links.check_status()))
}

/// 202 Accepted around `body`, with `Location` (the status query) and
/// `Retry-After`.
pub(super) fn accepted(links: &Links, body: impl IntoResponse) -> Response {
    let headers = [
        (header::LOCATION, links.status_query()),
        (header::RETRY_AFTER, RETRY_AFTER.to_owned()),
    ];
    (StatusCode::ACCEPTED, headers, body).into_response()
}

/// What a status payload shows of an instance besides its status.
#[derive(Debug, Clone, Copy)]
pub(super) struct Shown {
    /// Its input (and its history's inputs).
    pub input: bool,
    /// Its history's outputs.
    pub history_output: bool,
}

/// The status payload of `GET instances/{id}`.
pub(super) fn status_body(
    instance: &Instance,
    history: Option<&[HistoryEntry]>,
    shown: Shown,
) -> InstanceStatus {
    let Shown {
        input: show_input,
        history_output: show_history_output,
    } = shown;
    let mut body = InstanceStatus {
        name: instance.name.clone(),
        instance_id: instance.id.clone(),
        runtime_status: instance.status.as_str().to_owned(),
        input: if show_input {
            json_value(&instance.input)
        } else {
            Value::Null
        },
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
    body.history_events = history
        .map(|history| super::history::events(instance, history, show_input, show_history_output));
    body
}

/// Stored JSON text as a value; text that is somehow not JSON is shown as a string.
pub(super) fn json_value(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned()))
}

/// `2017-06-29T18:58:01Z`, the format Durable Functions uses for instance times.
pub(super) fn timestamp(millis: Millis) -> String {
    let format =
        time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    format_millis(millis, format)
}

pub(super) fn format_millis(
    millis: Millis,
    format: &[time::format_description::BorrowedFormatItem<'_>],
) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(millis) * 1_000_000)
        .ok()
        .and_then(|moment| moment.format(format).ok())
        .unwrap_or_default()
}
