//! The HTTP API, compatible with the Durable Functions HTTP API under
//! `/runtime/webhooks/durabletask`: same routes, status codes and JSON fields.
//!
//! Handlers parse and validate, call the [`Engine`], and render. They never
//! touch the store. Every error is a JSON body `{"message": …}` a person can
//! act on; see [`ApiError`]. Routes are listed in [`router`].

mod error;
mod handlers;
mod render;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{delete, get, post};

pub use self::error::ApiError;
use crate::engine::Engine;

/// Where the API lives, as in Durable Functions.
pub const BASE_PATH: &str = "/runtime/webhooks/durabletask";

#[derive(Clone)]
pub(crate) struct ApiState {
    engine: Engine,
}

/// Limits on what clients may send.
#[derive(Debug, Clone)]
pub struct ApiLimits {
    pub max_body_bytes: usize,
}

pub fn router(engine: Engine, limits: ApiLimits) -> Router {
    let routes = Router::new()
        .route("/orchestrators/{function_name}", post(handlers::start))
        .route(
            "/orchestrators/{function_name}/{instance_id}",
            post(handlers::start_with_id),
        )
        .route(
            "/instances/{instance_id}",
            get(handlers::status).merge(delete(handlers::purge)),
        )
        .route(
            "/instances/{instance_id}/raiseEvent/{event_name}",
            post(handlers::raise_event),
        )
        .route("/instances/{instance_id}/terminate", post(handlers::terminate));
    Router::new()
        .nest(BASE_PATH, routes)
        .fallback(handlers::not_found)
        .method_not_allowed_fallback(handlers::method_not_allowed)
        .layer(DefaultBodyLimit::max(limits.max_body_bytes))
        .with_state(ApiState { engine })
}
