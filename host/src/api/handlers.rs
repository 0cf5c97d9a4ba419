//! One function per route. Each validates its input, calls the engine once,
//! and maps the outcome to the status code Durable Functions uses.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};

use super::error::ErrorBody;
use super::render::{
    CheckStatus, ClientBinding, Function, InstanceStatus, Links, Purged, Shown, accepted,
    check_status_response, status_body,
};
use super::wait::{Wait, WaitQuery, finished_response, finished_status_code};
use super::{ApiError, ApiState};
use crate::engine::{DeliveryOutcome, EngineError, PurgeOutcome, RewindOutcome, StartOutcome};
use crate::entity::EntityId;
use crate::model::{InstanceId, RuntimeStatus};

pub(super) type ApiResult = Result<Response, ApiError>;

/// Every optional query parameter, looked up by the handler that knows them.
pub(super) type QueryMap = HashMap<String, String>;

/// The instance a route addresses (for the OpenAPI document).
#[derive(utoipa::IntoParams)]
#[into_params(names("instanceId"), parameter_in = Path)]
#[allow(dead_code)]
struct InstancePath(
    /// 1 to 256 characters, no / \ # ? or control characters
    String,
);

/// The reason an operation records (for the OpenAPI document).
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
struct ReasonQuery {
    /// Recorded in the history
    reason: Option<String>,
}

/// `POST orchestrators/{functionName}`: start under a fresh instance ID.
#[utoipa::path(
    post,
    path = "/runtime/webhooks/durabletask/orchestrators/{functionName}",
    params(("functionName" = String, Path, description = "A loaded orchestrator"), WaitQuery, ("traceparent" = Option<String>, Header, description = "W3C trace context: with tracing on (--otlp-endpoint), the instance's trace follows it")),
    request_body(content = Option<serde_json::Value>, description = "The orchestrator's input, any JSON; empty means null", content_type = "application/json"),
    responses(
        (status = 202, description = "Started: the start is durably committed", body = CheckStatus, headers(("Location" = String, description = "The status URL"))),
        (status = 200, description = "With `timeout`: the instance completed in time; the body is its output", body = Object),
        (status = 400, description = "Malformed JSON, instance ID or parameter, or no such orchestrator is loaded", body = ErrorBody),
        (status = 500, description = "With `timeout`: the instance failed in time (and `returnInternalServerErrorOnFailure=true`); the body is its status", body = InstanceStatus),
        (status = 409, description = "The instance ID belongs to an unfinished instance", body = ErrorBody),
        (status = 413, description = "The body is too large", body = ErrorBody),
        (status = 503, description = "Overloaded: retry after the Retry-After seconds", body = ErrorBody, headers(("Retry-After" = String))),
    ),
    tag = "orchestrators"
)]
pub(super) async fn start(
    state: State<ApiState>,
    headers: HeaderMap,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<QueryMap>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let Path(function_name) = path?;
    let Query(query) = query?;
    start_instance(state, headers, function_name, None, query, body?).await
}

/// `POST orchestrators/{functionName}/{instanceId}`: start a singleton.
#[utoipa::path(
    post,
    path = "/runtime/webhooks/durabletask/orchestrators/{functionName}/{instanceId}",
    params(("functionName" = String, Path, description = "A loaded orchestrator"), InstancePath, WaitQuery, ("traceparent" = Option<String>, Header, description = "W3C trace context: with tracing on (--otlp-endpoint), the instance's trace follows it")),
    request_body(content = Option<serde_json::Value>, description = "The orchestrator's input, any JSON; empty means null", content_type = "application/json"),
    responses(
        (status = 202, description = "Started: the start is durably committed", body = CheckStatus, headers(("Location" = String, description = "The status URL"))),
        (status = 200, description = "With `timeout`: the instance completed in time; the body is its output", body = Object),
        (status = 400, description = "Malformed JSON, instance ID or parameter, or no such orchestrator is loaded", body = ErrorBody),
        (status = 500, description = "With `timeout`: the instance failed in time (and `returnInternalServerErrorOnFailure=true`); the body is its status", body = InstanceStatus),
        (status = 409, description = "The instance ID belongs to an unfinished instance", body = ErrorBody),
        (status = 413, description = "The body is too large", body = ErrorBody),
        (status = 503, description = "Overloaded: retry after the Retry-After seconds", body = ErrorBody, headers(("Retry-After" = String))),
    ),
    tag = "orchestrators"
)]
pub(super) async fn start_with_id(
    state: State<ApiState>,
    headers: HeaderMap,
    path: Result<Path<(String, String)>, PathRejection>,
    query: Result<Query<QueryMap>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let Path((function_name, instance_id)) = path?;
    let Query(query) = query?;
    let id = parse_new_instance_id(&instance_id)?;
    start_instance(state, headers, function_name, Some(id), query, body?).await
}

async fn start_instance(
    State(state): State<ApiState>,
    headers: HeaderMap,
    function_name: String,
    id: Option<InstanceId>,
    query: QueryMap,
    body: Bytes,
) -> ApiResult {
    if let Some(version) = query.get("version").filter(|version| !version.is_empty()) {
        return Err(ApiError::bad_request(format!(
            "version={version}: Reprise versions orchestrators by their component file; an instance runs on the component loaded when it starts (its componentVersion), so leave out version"
        )));
    }
    let wait = Wait::from_query(&query)?;
    let input = json_body(&body, "the orchestrator input")?;
    let traceparent = traceparent(&headers);
    let started = state
        .engine
        .start(&function_name, id, input, traceparent)
        .await;
    started_response(&state, &headers, started, wait, &query).await
}

#[utoipa::path(
    post,
    path = "/runtime/webhooks/durabletask/instances/{instanceId}/restart",
    params(InstancePath, ("restartWithNewInstanceId" = Option<bool>, Query, description = "Default true; false reuses the ID of a finished instance"), WaitQuery, ("traceparent" = Option<String>, Header, description = "W3C trace context: with tracing on (--otlp-endpoint), the instance's trace follows it")),
    responses(
        (status = 202, description = "The new run is durably committed", body = CheckStatus, headers(("Location" = String))),
        (status = 200, description = "With `timeout`: the new run completed in time; the body is its output", body = Object),
        (status = 400, description = "Malformed instance ID or parameter, or the orchestrator is not loaded", body = ErrorBody),
        (status = 404, description = "No such instance", body = ErrorBody),
        (status = 409, description = "Reusing the ID of an unfinished instance", body = ErrorBody),
        (status = 503, description = "Overloaded: retry after the Retry-After seconds", body = ErrorBody, headers(("Retry-After" = String))),
    ),
    tag = "instances"
)]
/// `POST instances/{instanceId}/restart[?restartWithNewInstanceId=]`: run
/// the orchestrator again with the original input; by default under a new ID.
pub(super) async fn restart(
    State(state): State<ApiState>,
    headers: HeaderMap,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<QueryMap>, QueryRejection>,
) -> ApiResult {
    let Path(instance_id) = path?;
    let Query(query) = query?;
    let id = parse_instance_id(&instance_id)?;
    let new_id = bool_param(&query, "restartWithNewInstanceId", true)?;
    let wait = Wait::from_query(&query)?;
    let traceparent = traceparent(&headers);
    let started = match state.engine.restart(&id, new_id, traceparent).await {
        Ok(None) => return Err(ApiError::instance_not_found(id.as_str())),
        Ok(Some(started)) => Ok(started),
        Err(error) => Err(error),
    };
    started_response(&state, &headers, started, wait, &query).await
}

/// The W3C trace context the caller sent, if any (`traceparent`).
fn traceparent(headers: &HeaderMap) -> Option<&str> {
    headers
        .get("traceparent")
        .and_then(|value| value.to_str().ok())
}

/// 202 with the check-status payload of a started instance, or the error;
/// with a [`Wait`], its result if it finishes in time.
async fn started_response(
    state: &ApiState,
    headers: &HeaderMap,
    started: Result<(InstanceId, StartOutcome), EngineError>,
    wait: Option<Wait>,
    query: &QueryMap,
) -> ApiResult {
    let (id, outcome) = started.map_err(|error| match error {
        // Naming the loaded orchestrators, which the engine error does not.
        EngineError::UnknownOrchestrator(name) => {
            let known = state.engine.orchestrator_names();
            ApiError::bad_request(format!(
                "no orchestrator named '{name}' is loaded; loaded orchestrators: {known:?}"
            ))
        }
        other => ApiError::from(other),
    })?;
    match outcome {
        StartOutcome::Started => {
            if let Some(wait) = wait
                && let Some(instance) = wait.for_finish(&state.engine, &id).await?
            {
                return finished_response(&instance, query);
            }
            Ok(check_status_response(&Links::new(
                headers,
                &id,
                state.key.as_deref(),
            )))
        }
        StartOutcome::Conflict(status) => Err(ApiError::new(
            StatusCode::CONFLICT,
            format!(
                "an instance with ID '{id}' already exists and is {status}; it can be started again once it is Completed, Failed or Terminated"
            ),
        )),
    }
}

/// `GET instances/{instanceId}[?showHistory=&showHistoryOutput=&showInput=]`.
#[utoipa::path(
    get,
    path = "/runtime/webhooks/durabletask/instances/{instanceId}",
    params(
        InstancePath,
        ("showHistory" = Option<bool>, Query, description = "Include the current generation's history"),
        ("showHistoryOutput" = Option<bool>, Query, description = "Include outputs (Result) in the history"),
        ("showInput" = Option<bool>, Query, description = "Default true"),
        ("showReplayHistory" = Option<bool>, Query, description = "Reprise: include `generation` and `replayHistory`, the current generation's history as recorded (episode markers included), which `reprise replay` replays"),
        ("returnInternalServerErrorOnFailure" = Option<bool>, Query, description = "Answer 500 for a Failed instance"),
    ),
    responses(
        (status = 200, description = "Finished", body = InstanceStatus),
        (status = 500, description = "Failed, with `returnInternalServerErrorOnFailure=true`", body = InstanceStatus),
        (status = 202, description = "Pending, Running or Suspended", body = InstanceStatus, headers(("Location" = String), ("Retry-After" = String))),
        (status = 400, description = "Malformed instance ID or parameter", body = ErrorBody),
        (status = 404, description = "No such instance", body = ErrorBody),
    ),
    tag = "instances"
)]
pub(super) async fn status(
    State(state): State<ApiState>,
    headers: HeaderMap,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<QueryMap>, QueryRejection>,
) -> ApiResult {
    let Path(instance_id) = path?;
    let Query(query) = query?;
    let id = parse_instance_id(&instance_id)?;
    let show_history = bool_param(&query, "showHistory", false)?;
    let show_input = bool_param(&query, "showInput", true)?;
    let show_history_output = bool_param(&query, "showHistoryOutput", false)?;
    let show_replay_history = bool_param(&query, "showReplayHistory", false)?;
    let found = if show_history || show_replay_history {
        let found = state.engine.instance_with_history(&id).await?;
        found.map(|(instance, history)| (instance, Some(history)))
    } else {
        let found = state.engine.instance(&id).await?;
        found.map(|instance| (instance, None))
    };
    let Some((instance, history)) = found else {
        return Err(ApiError::instance_not_found(id.as_str()));
    };
    let shown = Shown {
        input: show_input,
        history_output: show_history_output,
    };
    let mut body = status_body(
        &instance,
        history.as_deref().filter(|_| show_history),
        shown,
    );
    if show_replay_history && let Some(history) = history {
        body.add_replay_history(&instance, history);
    }
    let body = axum::Json(body);
    if instance.status.is_terminal() {
        return Ok((finished_status_code(&instance, &query)?, body).into_response());
    }
    let links = Links::new(&headers, &id, state.key.as_deref());
    Ok(accepted(&links, body))
}

/// `POST instances/{instanceId}/raiseEvent/{eventName}`, body: the JSON payload.
#[utoipa::path(
    post,
    path = "/runtime/webhooks/durabletask/instances/{instanceId}/raiseEvent/{eventName}",
    params(InstancePath, ("eventName" = String, Path, description = "1 to 256 characters, no control characters")),
    request_body(content = Option<serde_json::Value>, description = "The payload, any JSON; empty means null", content_type = "application/json"),
    responses(
        (status = 202, description = "The event is durably queued"),
        (status = 400, description = "Malformed JSON, instance ID or event name", body = ErrorBody),
        (status = 404, description = "No such instance", body = ErrorBody),
        (status = 410, description = "The instance has finished or is being terminated", body = ErrorBody),
        (status = 413, description = "The body is too large", body = ErrorBody),
        (status = 503, description = "Overloaded: retry after the Retry-After seconds", body = ErrorBody, headers(("Retry-After" = String))),
    ),
    tag = "instances"
)]
pub(super) async fn raise_event(
    State(state): State<ApiState>,
    path: Result<Path<(String, String)>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let Path((instance_id, event_name)) = path?;
    let id = parse_instance_id(&instance_id)?;
    if event_name.is_empty()
        || event_name.chars().count() > 256
        || event_name.chars().any(char::is_control)
    {
        return Err(ApiError::bad_request(
            "the event name must be 1 to 256 characters with no control characters",
        ));
    }
    let payload = json_body(&body?, "the event payload")?;
    let outcome = state.engine.raise_event(&id, &event_name, payload).await?;
    delivery_response(&id, outcome, "raise an event to")
}

/// `POST instances/{instanceId}/terminate[?reason=]`.
#[utoipa::path(
    post,
    path = "/runtime/webhooks/durabletask/instances/{instanceId}/terminate",
    description = "Terminates the instance; the reason becomes its output",
    params(InstancePath, ReasonQuery),
    responses(Queued),
    tag = "instances"
)]
pub(super) async fn terminate(
    State(state): State<ApiState>,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<QueryMap>, QueryRejection>,
) -> ApiResult {
    let (id, reason) = id_and_reason(path, query)?;
    let outcome = state.engine.terminate(&id, reason).await?;
    delivery_response(&id, outcome, "terminate")
}

/// `POST instances/{instanceId}/suspend[?reason=]`.
#[utoipa::path(
    post,
    path = "/runtime/webhooks/durabletask/instances/{instanceId}/suspend",
    description = "Suspends the instance: events and results queue up",
    params(InstancePath, ReasonQuery),
    responses(Queued),
    tag = "instances"
)]
pub(super) async fn suspend(
    State(state): State<ApiState>,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<QueryMap>, QueryRejection>,
) -> ApiResult {
    let (id, reason) = id_and_reason(path, query)?;
    let outcome = state.engine.suspend(&id, reason).await?;
    delivery_response(&id, outcome, "suspend")
}

/// `POST instances/{instanceId}/resume[?reason=]`.
#[utoipa::path(
    post,
    path = "/runtime/webhooks/durabletask/instances/{instanceId}/resume",
    description = "Resumes a suspended instance",
    params(InstancePath, ReasonQuery),
    responses(Queued),
    tag = "instances"
)]
pub(super) async fn resume(
    State(state): State<ApiState>,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<QueryMap>, QueryRejection>,
) -> ApiResult {
    let (id, reason) = id_and_reason(path, query)?;
    let outcome = state.engine.resume(&id, reason).await?;
    delivery_response(&id, outcome, "resume")
}

#[utoipa::path(
    post,
    path = "/runtime/webhooks/durabletask/instances/{instanceId}/rewind",
    params(InstancePath, ReasonQuery),
    responses(
        (status = 202, description = "Rewound; the orchestrator runs again"),
        (status = 400, description = "Malformed instance ID", body = ErrorBody),
        (status = 404, description = "No such instance", body = ErrorBody),
        (status = 409, description = "The instance changed while it was being rewound", body = ErrorBody),
        (status = 412, description = "The instance has not failed (it is still live)", body = ErrorBody),
        (status = 410, description = "The instance completed or was terminated", body = ErrorBody),
    ),
    tag = "instances"
)]
/// `POST instances/{instanceId}/rewind[?reason=]`: a failed instance
/// resumes from its last good point; its failed activities run again.
pub(super) async fn rewind(
    State(state): State<ApiState>,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<QueryMap>, QueryRejection>,
) -> ApiResult {
    let (id, reason) = id_and_reason(path, query)?;
    match state.engine.rewind(&id, reason).await? {
        RewindOutcome::Rewound => Ok(StatusCode::ACCEPTED.into_response()),
        RewindOutcome::NotFound => Err(ApiError::instance_not_found(id.as_str())),
        RewindOutcome::NotFailed(status) if status.is_terminal() => {
            Err(gone(&id, status, "rewind"))
        }
        RewindOutcome::Changed => Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("instance '{id}' changed while it was being rewound; try again"),
        )),
        RewindOutcome::NotFailed(status) => Err(ApiError::new(
            StatusCode::PRECONDITION_FAILED,
            format!(
                "cannot rewind instance '{id}': it is {status}; only failed instances can be rewound"
            ),
        )),
        RewindOutcome::UsedEntities => Err(ApiError::new(
            StatusCode::PRECONDITION_FAILED,
            format!(
                "cannot rewind instance '{id}': it called or locked entities, whose answers and locks a re-run could not have again; restart it instead"
            ),
        )),
    }
}

/// What terminate, suspend and resume answer.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // Only describes the responses, for the OpenAPI document.
enum Queued {
    #[response(status = 202, description = "Durably queued")]
    Accepted,
    #[response(status = 400, description = "Malformed instance ID")]
    BadId(ErrorBody),
    #[response(status = 404, description = "No such instance")]
    NotFound(ErrorBody),
    #[response(
        status = 410,
        description = "The instance has finished or is being terminated"
    )]
    Gone(ErrorBody),
}

/// The instance ID of the path and the optional `reason` of the query, of
/// the operations that take no body.
fn id_and_reason(
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<QueryMap>, QueryRejection>,
) -> Result<(InstanceId, String), ApiError> {
    let Path(instance_id) = path?;
    let Query(mut query) = query?;
    let id = parse_instance_id(&instance_id)?;
    Ok((id, query.remove("reason").unwrap_or_default()))
}

/// `DELETE instances/{instanceId}`: purge a finished instance's history.
#[utoipa::path(
    delete,
    path = "/runtime/webhooks/durabletask/instances/{instanceId}",
    operation_id = "purge_instance",
    params(InstancePath),
    responses(
        (status = 200, description = "Deleted", body = Purged),
        (status = 400, description = "Malformed instance ID", body = ErrorBody),
        (status = 404, description = "No such instance", body = ErrorBody),
        (status = 412, description = "The instance has not finished", body = ErrorBody),
    ),
    tag = "instances"
)]
pub(super) async fn purge(
    State(state): State<ApiState>,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult {
    let Path(instance_id) = path?;
    let id = parse_instance_id(&instance_id)?;
    match state.engine.purge(&id).await? {
        PurgeOutcome::Purged => Ok(axum::Json(Purged::new(1)).into_response()),
        PurgeOutcome::NotFound => Err(ApiError::instance_not_found(id.as_str())),
        PurgeOutcome::NotFinished(status) => Err(ApiError::new(
            StatusCode::PRECONDITION_FAILED,
            format!(
                "instance '{id}' is {status}; only finished instances can be purged (terminate it first)"
            ),
        )),
    }
}

/// `GET functions`: the loaded orchestrators and activities, with the
/// component file and version each comes from.
#[utoipa::path(
    get,
    path = "/runtime/webhooks/durabletask/functions",
    responses((status = 200, description = "Loaded functions", body = Vec<Function>)),
    tag = "functions"
)]
pub(super) async fn functions(State(state): State<ApiState>) -> axum::Json<Vec<Function>> {
    axum::Json(super::render::functions(&state.engine.functions()))
}

/// `GET durableClient`: what the official Durable Functions clients are
/// constructed from, pointing at this host (as its caller reached it).
#[utoipa::path(
    get,
    path = "/runtime/webhooks/durabletask/durableClient",
    description = "Reprise: the durableClient binding data (taskHubName, creationUrls, managementUrls, baseUrl, requiredQueryStringParameters, rpcBaseUrl) the official Durable Functions clients are constructed from",
    responses((status = 200, description = "The binding", body = ClientBinding)),
    tag = "functions"
)]
pub(super) async fn client_binding(
    State(state): State<ApiState>,
    headers: HeaderMap,
) -> axum::Json<ClientBinding> {
    axum::Json(ClientBinding::new(
        &headers,
        &state.task_hub,
        state.key.as_deref(),
    ))
}

pub(super) async fn not_found(uri: Uri) -> ApiError {
    ApiError::not_found(format!(
        "no route for {}; the API lives under {}",
        uri.path(),
        super::BASE_PATH
    ))
}

pub(super) async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "this route does not accept that method",
    )
}

fn delivery_response(id: &InstanceId, outcome: DeliveryOutcome, action: &str) -> ApiResult {
    match outcome {
        DeliveryOutcome::Accepted => Ok(StatusCode::ACCEPTED.into_response()),
        DeliveryOutcome::NotFound => Err(ApiError::instance_not_found(id.as_str())),
        DeliveryOutcome::Finished(status) => Err(gone(id, status, action)),
        DeliveryOutcome::Terminating => Err(ApiError::new(
            StatusCode::GONE,
            format!("cannot {action} instance '{id}': it is being terminated"),
        )),
    }
}

fn gone(id: &InstanceId, status: RuntimeStatus, action: &str) -> ApiError {
    ApiError::new(
        StatusCode::GONE,
        format!("cannot {action} instance '{id}': it has already finished ({status})"),
    )
}

/// The orchestration instance a route addresses: an entity's ID (see
/// [`EntityId::is_entity`]) names none.
pub(super) fn parse_instance_id(text: &str) -> Result<InstanceId, ApiError> {
    let id = InstanceId::parse(text).map_err(ApiError::bad_request)?;
    if EntityId::is_entity(text) {
        return Err(ApiError::not_found(format!(
            "no orchestration instance with ID '{text}': IDs starting with '@' are entities' (see the entities routes)"
        )));
    }
    Ok(id)
}

/// The ID to start a new orchestration instance under.
fn parse_new_instance_id(text: &str) -> Result<InstanceId, ApiError> {
    if EntityId::is_entity(text) {
        return Err(ApiError::bad_request(format!(
            "orchestration instance IDs must not start with '@' ('{text}'): those are entities' IDs"
        )));
    }
    parse_instance_id(text)
}

/// The body as compact JSON text; an empty body is `null`, as in Durable Functions.
pub(super) fn json_body(body: &[u8], what: &str) -> Result<String, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok("null".to_owned());
    }
    let value: serde_json::Value = serde_json::from_slice(body)
        .map_err(|error| ApiError::bad_request(format!("{what} is not valid JSON: {error}")))?;
    Ok(value.to_string())
}

pub(super) fn bool_param(query: &QueryMap, name: &str, default: bool) -> Result<bool, ApiError> {
    match query.get(name).map(|value| value.to_ascii_lowercase()) {
        None => Ok(default),
        Some(value) if value == "true" => Ok(true),
        Some(value) if value == "false" => Ok(false),
        Some(value) => Err(ApiError::bad_request(format!(
            "query parameter {name} must be true or false, not '{value}'"
        ))),
    }
}

/// `GET /metrics`: the host's Prometheus metrics (OpenMetrics text), with
/// what waits in the store read now.
#[utoipa::path(
    get,
    path = "/metrics",
    description = "Reprise: Prometheus metrics in the OpenMetrics text format, every name prefixed reprise_ (listed in the README)",
    responses(
        (status = 200, description = "The metrics", content_type = "application/openmetrics-text", body = String),
        (status = 503, description = "The database is unavailable", body = ErrorBody),
    ),
    tag = "functions"
)]
pub(super) async fn metrics(State(state): State<ApiState>) -> Result<Response, ApiError> {
    let text = state.engine.scrape_metrics().await?;
    Ok(([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], text).into_response())
}
