//! What Durable Functions' API has no route for and the dashboard needs:
//! instance counts, component versions, and bulk actions over a filter.
//! Every filter here is the one `GET instances` takes ([`super::query`]).

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::IntoResponse;
use serde::Serialize;
use utoipa::ToSchema;

use super::error::ErrorBody;
use super::handlers::{ApiResult, QueryMap};
use super::query::{FILTER_PARAMETERS, FilterQuery, filter};
use super::render::timestamp;
use super::{ApiError, ApiState, BASE_PATH};
use crate::engine::{BulkAction, BulkProgress, MAX_RUNNING_JOBS};
use crate::model::RuntimeStatus;

/// A filtered count stops here: enough to size a bulk action. (A filter by
/// status alone is answered from the kept counts; others are counted.)
const COUNT_CAP: u64 = 10_000;

/// Instances by status, and how many match a filter.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Counts {
    /// Every status, with how many instances have it.
    by_status: BTreeMap<&'static str, u64>,
    total: u64,
    /// Present when a filter was given.
    #[serde(skip_serializing_if = "Option::is_none")]
    matching: Option<Matching>,
}

/// How many instances a filter selects.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Matching {
    count: u64,
    /// The count stopped at its cap: `count` or more match.
    at_least: bool,
}

/// `GET counts[?filter]`.
#[utoipa::path(
    get,
    path = "/runtime/webhooks/durabletask/counts",
    params(FilterQuery),
    responses(
        (status = 200, description = "Instances by status (kept by the store: cheap however many), and with a filter how many it selects (counted up to 10,000)", body = Counts),
        (status = 400, description = "A malformed parameter", body = ErrorBody),
    ),
    tag = "instances"
)]
pub(super) async fn counts(
    State(state): State<ApiState>,
    query: Result<Query<QueryMap>, QueryRejection>,
) -> ApiResult {
    let Query(query) = query?;
    let filtered = FILTER_PARAMETERS
        .iter()
        .any(|name| query.contains_key(*name));
    let selected = filter(&query)?;
    let kept = state.engine.instance_counts().await?;
    let mut by_status: BTreeMap<&'static str, u64> = RuntimeStatus::ALL
        .iter()
        .map(|status| (status.as_str(), 0))
        .collect();
    for (status, count) in &kept {
        by_status.insert(status.as_str(), *count);
    }
    let matching = match (filtered, selected) {
        (false, _) => None,
        (true, None) => Some(Matching {
            count: 0,
            at_least: false,
        }),
        // By status alone: what the store keeps, exact and cheap.
        (true, Some(selected)) if selected.by_status_only() => Some(Matching {
            count: selected
                .statuses
                .iter()
                .map(|status| by_status[status.as_str()])
                .sum(),
            at_least: false,
        }),
        (true, Some(selected)) => {
            let count = state.engine.count_instances(selected, COUNT_CAP).await?;
            Some(Matching {
                count,
                at_least: count >= COUNT_CAP,
            })
        }
    };
    let body = Counts {
        total: by_status.values().sum(),
        by_status,
        matching,
    };
    Ok(Json(body).into_response())
}

/// A stored component version.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Version {
    /// `sha256:` and the digest of the file.
    version: String,
    /// When this host's store first saw it: since when it is served.
    stored_at: String,
    /// When the functions folder stopped serving it; `null` while served.
    retired_at: Option<String>,
    /// Unfinished instances pinned to it.
    live_instances: u64,
}

/// `GET versions`.
#[utoipa::path(
    get,
    path = "/runtime/webhooks/durabletask/versions",
    responses((status = 200, description = "Every stored component version, oldest first", body = Vec<Version>)),
    tag = "functions"
)]
pub(super) async fn versions(State(state): State<ApiState>) -> ApiResult {
    let versions: Vec<Version> = state
        .engine
        .component_versions()
        .await?
        .into_iter()
        .map(|stored| Version {
            version: stored.version,
            stored_at: timestamp(stored.stored_at),
            retired_at: stored.retired_at.map(timestamp),
            live_instances: stored.live_instances,
        })
        .collect();
    Ok(Json(versions).into_response())
}

/// A bulk action's progress.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BulkJob {
    id: String,
    /// `terminate`, `purge` or `rewind`.
    action: &'static str,
    /// `running` or `done`.
    state: &'static str,
    /// Instances looked at so far.
    processed: u64,
    succeeded: u64,
    /// Selected, but not in a state the action applies to.
    skipped: u64,
    failed: u64,
    /// The first failures.
    errors: Vec<BulkError>,
    /// Why the job stopped before the end of its selection, if it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    stopped: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BulkError {
    instance_id: String,
    message: String,
}

impl From<BulkProgress> for BulkJob {
    fn from(progress: BulkProgress) -> BulkJob {
        BulkJob {
            id: progress.id,
            action: progress.action.as_str(),
            state: if progress.done { "done" } else { "running" },
            processed: progress.processed,
            succeeded: progress.succeeded,
            skipped: progress.skipped,
            failed: progress.failed,
            errors: progress
                .errors
                .into_iter()
                .map(|(instance_id, message)| BulkError {
                    instance_id,
                    message,
                })
                .collect(),
            stopped: progress.stopped,
        }
    }
}

/// `POST bulk?action=&[filter]&[reason=]`.
#[utoipa::path(
    post,
    path = "/runtime/webhooks/durabletask/bulk",
    params(
        ("action" = String, Query, description = "terminate (live instances), purge (finished ones) or rewind (failed ones)"),
        ("reason" = Option<String>, Query, description = "For terminate and rewind"),
        FilterQuery,
    ),
    responses(
        (status = 202, description = "Started in the background; poll Location", body = BulkJob, headers(("Location" = String, description = "The job's progress"))),
        (status = 400, description = "No or an unknown action, or a malformed filter", body = ErrorBody),
        (status = 429, description = "4 bulk jobs are running on this host already", body = ErrorBody),
    ),
    tag = "instances"
)]
pub(super) async fn start_bulk(
    State(state): State<ApiState>,
    query: Result<Query<QueryMap>, QueryRejection>,
) -> ApiResult {
    let Query(query) = query?;
    let action = query.get("action").map(String::as_str).unwrap_or_default();
    let action = BulkAction::parse(action).ok_or_else(|| {
        ApiError::bad_request(format!(
            "action must be terminate, purge or rewind, not '{action}'"
        ))
    })?;
    let selected = filter(&query)?;
    let reason = query.get("reason").cloned().unwrap_or_default();
    let Some(progress) = state.engine.start_bulk(action, selected, reason) else {
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "{MAX_RUNNING_JOBS} bulk jobs are running on this host already; wait for one to finish"
            ),
        ));
    };
    let location = format!("{BASE_PATH}/bulk/{}", progress.id);
    let mut response = (StatusCode::ACCEPTED, Json(BulkJob::from(progress))).into_response();
    if let Ok(location) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

/// `GET bulk/{jobId}`.
#[utoipa::path(
    get,
    path = "/runtime/webhooks/durabletask/bulk/{jobId}",
    params(("jobId" = String, Path, description = "From the job's start")),
    responses(
        (status = 200, description = "Its progress", body = BulkJob),
        (status = 404, description = "No such job on this host (jobs live in the memory of the host that runs them)", body = ErrorBody),
    ),
    tag = "instances"
)]
pub(super) async fn bulk_progress(
    State(state): State<ApiState>,
    Path(job_id): Path<String>,
) -> ApiResult {
    match state.engine.bulk_progress(&job_id) {
        Some(progress) => Ok(Json(BulkJob::from(progress)).into_response()),
        None => Err(ApiError::not_found(format!(
            "no bulk job {job_id} on this host: jobs are kept in the memory of the host that runs them, the last 32"
        ))),
    }
}
