//! The HTTP API, compatible with the Durable Functions HTTP API under
//! `/runtime/webhooks/durabletask`: same routes, status codes and JSON fields.
//!
//! Handlers parse and validate, call the [`Engine`], and render. They never
//! touch the store. Every error is a JSON body `{"message": …}` a person can
//! act on (with Durable Functions' `Message` and `ExceptionMessage` too);
//! see [`ApiError`]. Routes are listed in [`router`]; paths are matched as
//! Durable Functions matches them ([`path`]).

mod access;
mod entities;
mod error;
mod handlers;
mod history;
mod openapi;
mod origin;
mod overview;
mod path;
mod query;
mod render;
mod wait;

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};

pub use self::error::ApiError;
pub use self::openapi::{ApiDoc, document_text as openapi_document};
pub use self::path::check_task_hub_name;
pub use self::query::CONTINUATION_HEADER;
use crate::engine::Engine;
use crate::metrics::Metrics;

/// Where the API lives, as in Durable Functions.
pub const BASE_PATH: &str = "/runtime/webhooks/durabletask";

#[derive(Clone)]
pub(crate) struct ApiState {
    engine: Engine,
    /// The access key in force, if any; the URLs the host hands out carry it.
    key: Option<Arc<str>>,
    /// The task hub's name, in the client binding the host hands out.
    task_hub: Arc<str>,
}

/// What clients may send, and what they must show.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    pub max_body_bytes: usize,
    /// Required on every request when set.
    pub access_key: Option<String>,
    /// The one task hub served; requests naming another are refused.
    pub task_hub: String,
}

pub fn router(engine: Engine, config: ApiConfig) -> Router {
    let key: Option<Arc<str>> = config.access_key.as_deref().map(Arc::from);
    let max_body_bytes = config.max_body_bytes;
    let task_hub: Arc<str> = Arc::from(config.task_hub.as_str());
    let routes = Router::new()
        .route("/orchestrators/{function_name}", post(handlers::start))
        .route(
            "/orchestrators/{function_name}/{instance_id}",
            post(handlers::start_with_id),
        )
        .route("/openapi.json", get(openapi::document))
        .route("/functions", get(handlers::functions))
        .route("/durableClient", get(handlers::client_binding))
        .route("/entities", get(entities::list_all))
        .route(
            "/entities/{entity_name}",
            get(entities::list_named).merge(post(entities::signal_empty_key)),
        )
        .route(
            "/entities/{entity_name}/{entity_key}",
            get(entities::read)
                .merge(post(entities::signal))
                .merge(delete(entities::signal_delete)),
        )
        .route("/instances", get(query::list).merge(delete(query::purge)))
        .route("/counts", get(overview::counts))
        .route("/versions", get(overview::versions))
        .route("/bulk", post(overview::start_bulk))
        .route("/bulk/{job_id}", get(overview::bulk_progress))
        .route(
            "/instances/{instance_id}",
            get(handlers::status).merge(delete(handlers::purge)),
        )
        .route(
            "/instances/{instance_id}/raiseEvent/{event_name}",
            post(handlers::raise_event),
        )
        .route(
            "/instances/{instance_id}/terminate",
            post(handlers::terminate),
        )
        .route("/instances/{instance_id}/suspend", post(handlers::suspend))
        .route("/instances/{instance_id}/resume", post(handlers::resume))
        .route("/instances/{instance_id}/restart", post(handlers::restart))
        .route("/instances/{instance_id}/rewind", post(handlers::rewind));
    let metrics = engine.metrics();
    let router = Router::new()
        .route("/metrics", get(handlers::metrics))
        .nest(BASE_PATH, routes)
        .fallback(handlers::not_found)
        .method_not_allowed_fallback(handlers::method_not_allowed)
        // Bodies without a declared length are cut off while read...
        .layer(DefaultBodyLimit::max(max_body_bytes))
        // ...and a declared length over the limit is refused before reading.
        .layer(middleware::from_fn(move |request: Request, next: Next| {
            refuse_declared_oversize(max_body_bytes, request, next)
        }))
        .layer(middleware::from_fn({
            let task_hub = Arc::clone(&task_hub);
            move |request: Request, next: Next| {
                path::require_task_hub(Arc::clone(&task_hub), request, next)
            }
        }))
        .with_state(ApiState {
            engine,
            key: key.clone(),
            task_hub,
        });
    let router = match key {
        // Nothing is looked at before the key is checked (but for the
        // request counter outside it, which reads only the matched route
        // template and the method).
        Some(key) => router.layer(middleware::from_fn(move |request: Request, next: Next| {
            access::require_key(Arc::clone(&key), request, next)
        })),
        None => router,
    };
    // Outermost of the routed layers: every answer counts, a refusal too.
    let router = router.layer(middleware::from_fn(move |request: Request, next: Next| {
        count_request(Arc::clone(&metrics), request, next)
    }));
    // A layer of the router itself runs after routing; this one wraps a
    // router whose only route is the whole API, so it runs before.
    let keyed = if config.access_key.is_some() {
        origin::Keyed::Yes
    } else {
        origin::Keyed::No
    };
    // The dashboard's files carry no data; what they show, they read
    // through the API, key and all.
    Router::new()
        .merge(crate::dashboard::router())
        .fallback_service(router)
        .layer(middleware::map_request(path::canonicalize))
        .layer(middleware::from_fn(move |request: Request, next: Next| {
            origin::guard(keyed, request, next)
        }))
}

/// Records the request's answer in the metrics, under its route template
/// (never its path, which names instances and may carry the key).
async fn count_request(metrics: Arc<Metrics>, request: Request, next: Next) -> Response {
    let route = match request.extensions().get::<MatchedPath>() {
        Some(route) => route.as_str().to_owned(),
        None => "unmatched".to_owned(),
    };
    let method = request.method().clone();
    let began = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16();
    metrics.request_answered(&route, &method, status, began.elapsed());
    response
}

async fn refuse_declared_oversize(limit: usize, request: Request, next: Next) -> Response {
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    match declared {
        Some(length) if length > limit as u64 => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the request body is larger than the host accepts ({length} > {limit} bytes; see --max-body-bytes)"),
        )
        .into_response(),
        _ => next.run(request).await,
    }
}
