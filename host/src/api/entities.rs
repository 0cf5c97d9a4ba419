//! `entities/…`: durable entities, as Durable Functions serves them:
//! signal one (`POST`, `DELETE` signals `delete`), read one, list them.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::IntoResponse;
use serde_json::Value;

use super::error::ErrorBody;
use super::handlers::{ApiResult, QueryMap, bool_param, json_body};
use super::query::{CONTINUATION_HEADER, continuation, page_size, time_param};
use super::render::{json_value, timestamp};
use super::{ApiError, ApiState};
use crate::engine::{EntityQuery, EntityView};
use crate::entity::EntityId;

/// An entity as a listing shows it.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EntityStatus {
    entity_id: EntityIdBody,
    /// ISO 8601, UTC.
    last_operation_time: String,
    /// With `fetchState=true`; else null.
    #[schema(value_type = Object)]
    state: Value,
}

#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct EntityIdBody {
    /// Lowercase.
    name: String,
    key: String,
}

/// The entity a route addresses; `$` is the empty key (on reads).
fn entity_id(name: &str, key: &str) -> Result<EntityId, ApiError> {
    EntityId::checked(name, key).map_err(ApiError::bad_request)
}

/// `POST entities/{entityName}/{entityKey}[?op=]`: signal an entity.
#[utoipa::path(
    post,
    path = "/runtime/webhooks/durabletask/entities/{entityName}/{entityKey}",
    params(
        ("entityName" = String, Path, description = "A loaded entity, in any case"),
        ("entityKey" = String, Path, description = "Which one; with the name at most 256 characters, no / \\ # ? or control characters"),
        ("op" = Option<String>, Query, description = "The operation; absent means the empty name"),
    ),
    request_body(content = Option<serde_json::Value>, description = "The operation's input, any JSON; empty means null", content_type = "application/json"),
    responses(
        (status = 202, description = "Accepted: the signal is durably committed; the entity is created by its first signal"),
        (status = 400, description = "No such entity is loaded, a malformed key, or malformed JSON", body = ErrorBody),
        (status = 413, description = "The body is too large", body = ErrorBody),
        (status = 503, description = "Overloaded: retry after the Retry-After seconds", body = ErrorBody, headers(("Retry-After" = String))),
    ),
    tag = "entities"
)]
pub(super) async fn signal(
    State(state): State<ApiState>,
    path: Result<Path<(String, String)>, PathRejection>,
    query: Result<Query<QueryMap>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let Path((name, key)) = path?;
    let Query(mut query) = query?;
    let operation = query.remove("op").unwrap_or_default();
    send(state, entity_id(&name, &key)?, operation, &body?).await
}

/// `POST entities/{entityName}[?op=]`: signal the entity with the empty key.
#[utoipa::path(
    post,
    path = "/runtime/webhooks/durabletask/entities/{entityName}",
    operation_id = "signal_empty_key",
    params(
        ("entityName" = String, Path, description = "A loaded entity, in any case"),
        ("op" = Option<String>, Query, description = "The operation; absent means the empty name"),
    ),
    request_body(content = Option<serde_json::Value>, description = "The operation's input, any JSON; empty means null", content_type = "application/json"),
    responses(
        (status = 202, description = "Accepted: the signal is durably committed"),
        (status = 400, description = "No such entity is loaded, or malformed JSON", body = ErrorBody),
    ),
    tag = "entities"
)]
pub(super) async fn signal_empty_key(
    State(state): State<ApiState>,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<QueryMap>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let Path(name) = path?;
    let Query(mut query) = query?;
    let operation = query.remove("op").unwrap_or_default();
    send(state, entity_id(&name, "")?, operation, &body?).await
}

/// `DELETE entities/{entityName}/{entityKey}`: signal operation `delete`.
#[utoipa::path(
    delete,
    path = "/runtime/webhooks/durabletask/entities/{entityName}/{entityKey}",
    operation_id = "signal_delete",
    description = "Signals operation `delete` (what it does is the entity's to decide; the SDK's entities delete their state), as Durable Functions does",
    params(
        ("entityName" = String, Path, description = "A loaded entity, in any case"),
        ("entityKey" = String, Path, description = "Which one"),
    ),
    responses(
        (status = 202, description = "Accepted: the signal is durably committed"),
        (status = 400, description = "No such entity is loaded, or a malformed key", body = ErrorBody),
    ),
    tag = "entities"
)]
pub(super) async fn signal_delete(
    State(state): State<ApiState>,
    path: Result<Path<(String, String)>, PathRejection>,
) -> ApiResult {
    let Path((name, key)) = path?;
    send(state, entity_id(&name, &key)?, "delete".to_owned(), &[]).await
}

async fn send(state: ApiState, id: EntityId, operation: String, body: &[u8]) -> ApiResult {
    if operation.chars().count() > 256 || operation.chars().any(char::is_control) {
        return Err(ApiError::bad_request(
            "the operation name must be at most 256 characters with no control characters",
        ));
    }
    let input = json_body(body, "the operation's input")?;
    state.engine.signal_entity(&id, operation, input).await?;
    Ok(StatusCode::ACCEPTED.into_response())
}

/// `GET entities/{entityName}/{entityKey}`: an entity's state.
#[utoipa::path(
    get,
    path = "/runtime/webhooks/durabletask/entities/{entityName}/{entityKey}",
    params(
        ("entityName" = String, Path, description = "Any case"),
        ("entityKey" = String, Path, description = "Which one; `$` is the empty key"),
    ),
    responses(
        (status = 200, description = "The entity's state, as its last committed operation left it", body = Object),
        (status = 404, description = "The entity has no state (never set, or deleted)", body = ErrorBody),
    ),
    tag = "entities"
)]
pub(super) async fn read(
    State(state): State<ApiState>,
    path: Result<Path<(String, String)>, PathRejection>,
) -> ApiResult {
    let Path((name, key)) = path?;
    let key = if key == "$" { "" } else { key.as_str() };
    let id = entity_id(&name, key)?;
    match state.engine.entity(&id).await? {
        Some(view) => Ok((
            [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
            view.state,
        )
            .into_response()),
        None => Err(ApiError::not_found(format!("entity {id} has no state"))),
    }
}

/// `GET entities[?…]`: existing entities, a page at a time.
#[utoipa::path(
    get,
    path = "/runtime/webhooks/durabletask/entities",
    params(ListQuery),
    responses(
        (status = 200, description = "One page of entities that have state, in creation order; a page may hold fewer than `top`", body = Vec<EntityStatus>, headers(("x-ms-continuation-token" = String, description = "Present when there is a next page"))),
        (status = 400, description = "A malformed parameter or token", body = ErrorBody),
    ),
    tag = "entities"
)]
pub(super) async fn list_all(
    state: State<ApiState>,
    headers: HeaderMap,
    query: Result<Query<QueryMap>, QueryRejection>,
) -> ApiResult {
    let Query(query) = query?;
    list(state, headers, None, query).await
}

/// `GET entities/{entityName}[?…]`: existing entities of one name.
#[utoipa::path(
    get,
    path = "/runtime/webhooks/durabletask/entities/{entityName}",
    params(("entityName" = String, Path, description = "Any case"), ListQuery),
    responses(
        (status = 200, description = "One page of entities of that name that have state", body = Vec<EntityStatus>, headers(("x-ms-continuation-token" = String, description = "Present when there is a next page"))),
        (status = 400, description = "A malformed parameter or token", body = ErrorBody),
    ),
    tag = "entities"
)]
pub(super) async fn list_named(
    state: State<ApiState>,
    headers: HeaderMap,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<QueryMap>, QueryRejection>,
) -> ApiResult {
    let Path(name) = path?;
    let Query(query) = query?;
    list(state, headers, Some(name), query).await
}

/// The parameters of an entity listing (for the OpenAPI document).
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code, non_snake_case)]
struct ListQuery {
    /// ISO 8601: last operation at or after
    lastOperationTimeFrom: Option<String>,
    /// ISO 8601: last operation at or before
    lastOperationTimeTo: Option<String>,
    /// Page size, 1 to 1000, default 100
    top: Option<u32>,
    /// Include each entity's state; default false
    fetchState: Option<bool>,
}

async fn list(
    State(state): State<ApiState>,
    headers: HeaderMap,
    name: Option<String>,
    query: QueryMap,
) -> ApiResult {
    let fetch_state = bool_param(&query, "fetchState", false)?;
    let selected = EntityQuery {
        name,
        from: time_param(&query, "lastOperationTimeFrom")?,
        to: time_param(&query, "lastOperationTimeTo")?,
    };
    let page_size = page_size(&query)?;
    let after = continuation(&headers)?;
    let (page, next) = state
        .engine
        .query_entities(selected, after, page_size)
        .await?;
    let body: Vec<EntityStatus> = page
        .into_iter()
        .map(|view| status(view, fetch_state))
        .collect();
    let mut response = Json(body).into_response();
    if let Some(next) = next {
        let token = HeaderValue::from_str(&super::query::encode_token(&next))
            .expect("hex digits make a valid header value");
        response.headers_mut().insert(CONTINUATION_HEADER, token);
    }
    Ok(response)
}

fn status(view: EntityView, fetch_state: bool) -> EntityStatus {
    EntityStatus {
        entity_id: EntityIdBody {
            name: view.id.name().to_owned(),
            key: view.id.key().to_owned(),
        },
        last_operation_time: timestamp(view.last_operation),
        state: if fetch_state {
            json_value(&view.state)
        } else {
            Value::Null
        },
    }
}
