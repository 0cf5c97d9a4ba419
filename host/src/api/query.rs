//! `GET instances` and `DELETE instances`: many instances at once, selected
//! by creation time, status and ID prefix. Queries page through the
//! `x-ms-continuation-token` header, as in Durable Functions.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::IntoResponse;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::error::ErrorBody;
use super::handlers::{ApiResult, QueryMap, bool_param};
use super::render::{InstanceStatus, Purged, Shown, status_body};
use super::{ApiError, ApiState};
use crate::engine::{InstanceFilter, PageCursor, PageOrder};
use crate::model::{Millis, RuntimeStatus};
use crate::store::InstanceKind;

/// The header carrying the position of the next page, both ways.
pub const CONTINUATION_HEADER: &str = "x-ms-continuation-token";
const DEFAULT_PAGE_SIZE: usize = 100;
const MAX_PAGE_SIZE: usize = 1000;

/// `GET instances[?createdTimeFrom=&createdTimeTo=&runtimeStatus=&instanceIdPrefix=&top=&showInput=]`.
#[utoipa::path(
    get,
    path = "/runtime/webhooks/durabletask/instances",
    params(
        FilterQuery,
        ("order" = Option<String>, Query, description = "oldest (the default) or newest first (Reprise)"),
        ("top" = Option<u32>, Query, description = "Page size, 1 to 1000, default 100"),
        ("showInput" = Option<bool>, Query, description = "Default true"),
        ("x-ms-continuation-token" = Option<String>, Header, description = "From the previous page"),
    ),
    responses(
        (status = 200, description = "One page, in creation order", body = Vec<InstanceStatus>, headers(("x-ms-continuation-token" = String, description = "Present when there is a next page"))),
        (status = 400, description = "A malformed parameter or token", body = ErrorBody),
    ),
    tag = "instances"
)]
pub(super) async fn list(
    State(state): State<ApiState>,
    headers: HeaderMap,
    query: Result<Query<QueryMap>, QueryRejection>,
) -> ApiResult {
    let Query(query) = query?;
    let filter = filter(&query)?;
    let show_input = bool_param(&query, "showInput", true)?;
    let page_size = page_size(&query)?;
    let after = continuation(&headers)?;
    let Some(filter) = filter else {
        return Ok(Json(Vec::<InstanceStatus>::new()).into_response());
    };
    let (page, next) = state.engine.query(filter, after, page_size).await?;
    let body: Vec<InstanceStatus> = page
        .iter()
        .map(|instance| {
            let shown = Shown {
                input: show_input,
                history_output: false,
            };
            status_body(instance, None, shown)
        })
        .collect();
    let mut response = Json(body).into_response();
    if let Some(next) = next {
        let token = HeaderValue::from_str(&encode_token(&next))
            .expect("hex digits make a valid header value");
        response.headers_mut().insert(CONTINUATION_HEADER, token);
    }
    Ok(response)
}

#[utoipa::path(
    delete,
    path = "/runtime/webhooks/durabletask/instances",
    operation_id = "purge_instances",
    params(
        ("createdTimeFrom" = String, Query, description = "ISO 8601; required"),
        ("createdTimeTo" = Option<String>, Query, description = "ISO 8601"),
        ("runtimeStatus" = Option<String>, Query, description = "Comma-separated statuses (any case; Canceled matches none)"),
        ("name" = Option<String>, Query, description = "The orchestrator's name, exactly (Reprise)"),
    ),
    responses(
        (status = 200, description = "Deleted", body = Purged),
        (status = 400, description = "createdTimeFrom missing, or a malformed parameter", body = ErrorBody),
        (status = 404, description = "No finished instance matched", body = ErrorBody),
    ),
    tag = "instances"
)]
/// `DELETE instances?createdTimeFrom=[&createdTimeTo=][&runtimeStatus=]`:
/// purge the finished instances among those selected.
pub(super) async fn purge(
    State(state): State<ApiState>,
    query: Result<Query<QueryMap>, QueryRejection>,
) -> ApiResult {
    let Query(query) = query?;
    if !query.contains_key("createdTimeFrom") {
        return Err(ApiError::bad_request(
            "a bulk purge needs createdTimeFrom (an ISO 8601 time); to purge one instance, DELETE instances/{instanceId}",
        ));
    }
    let deleted = match filter(&query)? {
        Some(filter) => state.engine.purge_matching(filter, |_| {}).await?,
        None => 0,
    };
    if deleted == 0 {
        return Err(ApiError::not_found(
            "no finished instance matches the filter",
        ));
    }
    Ok((StatusCode::OK, Json(Purged::new(deleted))).into_response())
}

/// The parameters that select instances, as [`filter`] reads them (for
/// the OpenAPI document).
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query, rename_all = "camelCase")]
#[allow(dead_code)]
pub(super) struct FilterQuery {
    /// ISO 8601; created at or after
    created_time_from: Option<String>,
    /// ISO 8601; created at or before
    created_time_to: Option<String>,
    /// Comma-separated statuses (any case; Canceled matches none)
    runtime_status: Option<String>,
    instance_id_prefix: Option<String>,
    /// The orchestrator's name, exactly (Reprise)
    name: Option<String>,
}

/// The parameters [`filter`] reads.
pub(super) const FILTER_PARAMETERS: [&str; 5] = [
    "runtimeStatus",
    "name",
    "instanceIdPrefix",
    "createdTimeFrom",
    "createdTimeTo",
];

/// The instances the query selects, and in which order (`order=newest`
/// for newest first); `None` when it can select none (it asks only for
/// statuses Reprise never reports, such as `Canceled`).
pub(super) fn filter(query: &QueryMap) -> Result<Option<InstanceFilter>, ApiError> {
    let names: Vec<&str> = query
        .get("runtimeStatus")
        .map(|list| {
            list.split(',')
                .map(str::trim)
                .filter(|name| !name.is_empty())
                .collect()
        })
        .unwrap_or_default();
    let mut statuses = Vec::new();
    for name in &names {
        match RuntimeStatus::parse(name) {
            Some(status) => statuses.push(status),
            // Durable Functions' status for an instance canceled before it
            // ran; no Reprise instance is ever in it.
            None if name.eq_ignore_ascii_case("Canceled") => {}
            None => return Err(unknown_status(name)),
        }
    }
    // Every parameter is checked, even when no instance can match.
    let created_from = time_param(query, "createdTimeFrom")?;
    let created_to = time_param(query, "createdTimeTo")?;
    let order = match query.get("order").map(String::as_str) {
        None | Some("oldest") => PageOrder::OldestFirst,
        Some("newest") => PageOrder::NewestFirst,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "order must be oldest or newest, not '{other}'"
            )));
        }
    };
    if !names.is_empty() && statuses.is_empty() {
        return Ok(None);
    }
    Ok(Some(InstanceFilter {
        created_from,
        created_to,
        statuses,
        id_prefix: query.get("instanceIdPrefix").cloned(),
        name: query.get("name").cloned(),
        order,
        kind: InstanceKind::Orchestrations,
    }))
}

fn unknown_status(name: &str) -> ApiError {
    let known: Vec<&str> = RuntimeStatus::ALL
        .iter()
        .map(|status| status.as_str())
        .chain(["Canceled"])
        .collect();
    ApiError::bad_request(format!(
        "runtimeStatus '{name}' is not one of {}",
        known.join(", ")
    ))
}

/// The `top` parameter: a page's size.
pub(super) fn page_size(query: &QueryMap) -> Result<usize, ApiError> {
    let Some(top) = query.get("top") else {
        return Ok(DEFAULT_PAGE_SIZE);
    };
    top.parse::<usize>()
        .ok()
        .filter(|top| (1..=MAX_PAGE_SIZE).contains(top))
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "top must be a number from 1 to {MAX_PAGE_SIZE}, not '{top}'"
            ))
        })
}

/// Where the page asked for begins: after the request's continuation
/// token, if it has one.
pub(super) fn continuation(headers: &HeaderMap) -> Result<Option<PageCursor>, ApiError> {
    headers
        .get(CONTINUATION_HEADER)
        .map(decode_token)
        .transpose()
}

pub(super) fn time_param(query: &QueryMap, name: &str) -> Result<Option<Millis>, ApiError> {
    let Some(text) = query.get(name) else {
        return Ok(None);
    };
    let time = OffsetDateTime::parse(text, &Rfc3339).map_err(|error| {
        ApiError::bad_request(format!(
            "{name} must be an ISO 8601 time such as 2026-01-31T12:00:00Z, not '{text}': {error}"
        ))
    })?;
    let millis = time.unix_timestamp_nanos() / 1_000_000;
    Ok(Some(millis.clamp(0, i64::MAX as i128) as Millis))
}

/// A cursor as a header-safe opaque token: the hex of `created_at:id`.
pub(super) fn encode_token(cursor: &PageCursor) -> String {
    format!("{}:{}", cursor.created_at, cursor.instance_id)
        .bytes()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

fn decode_token(token: &HeaderValue) -> Result<PageCursor, ApiError> {
    let invalid = || {
        ApiError::bad_request(format!(
            "the {CONTINUATION_HEADER} header is not a token this host issued"
        ))
    };
    let hex = token.to_str().map_err(|_| invalid())?;
    if hex.len() % 2 != 0 {
        return Err(invalid());
    }
    let bytes = (0..hex.len())
        .step_by(2)
        .map(|at| u8::from_str_radix(hex.get(at..at + 2).unwrap_or("x"), 16))
        .collect::<Result<Vec<u8>, _>>()
        .map_err(|_| invalid())?;
    let text = String::from_utf8(bytes).map_err(|_| invalid())?;
    let (created_at, instance_id) = text.split_once(':').ok_or_else(invalid)?;
    Ok(PageCursor {
        created_at: created_at.parse().map_err(|_| invalid())?,
        instance_id: instance_id.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_foreign_ones_are_refused() {
        let cursor = PageCursor {
            created_at: 1_700_000_000_123,
            instance_id: "counter:é 1".to_owned(),
        };
        let token = HeaderValue::from_str(&encode_token(&cursor)).unwrap();
        assert_eq!(decode_token(&token).unwrap(), cursor);
        for foreign in ["bnVsbA==", "abc", "zz", "6869"] {
            let token = HeaderValue::from_static(foreign);
            assert!(decode_token(&token).is_err(), "{foreign}");
        }
    }
}
