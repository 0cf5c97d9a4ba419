//! The OpenAPI 3 document of the API, generated from the handlers'
//! `#[utoipa::path]` annotations and served at `{BASE_PATH}/openapi.json`.
//! A copy is checked in (`host/openapi.json`); a test fails when it is stale.

use axum::Json;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::entities::{EntityIdBody, EntityStatus};
use super::error::ErrorBody;
use super::overview::{BulkError, BulkJob, Counts, Matching, Version};
use super::render::{CheckStatus, ClientBinding, Function, InstanceStatus, Purged};
use super::{entities, handlers, overview, query};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Reprise management API",
        description = "Start, query, drive and manage durable orchestration instances. Compatible with the Durable Functions HTTP API. When the host has an access key, every request must carry it (as the `code` query parameter or the `x-functions-key` header) or gets 401."
    ),
    paths(
        handlers::start,
        handlers::start_with_id,
        handlers::status,
        handlers::raise_event,
        handlers::terminate,
        handlers::suspend,
        handlers::resume,
        handlers::restart,
        handlers::rewind,
        handlers::purge,
        query::list,
        query::purge,
        handlers::functions,
        overview::counts,
        overview::versions,
        overview::start_bulk,
        overview::bulk_progress,
        entities::signal,
        entities::signal_empty_key,
        entities::signal_delete,
        entities::read,
        entities::list_all,
        entities::list_named,
        handlers::client_binding,
        handlers::metrics,
        document,
    ),
    components(schemas(
        CheckStatus,
        InstanceStatus,
        Purged,
        ErrorBody,
        Function,
        ClientBinding,
        Counts,
        Matching,
        Version,
        BulkJob,
        BulkError,
        EntityStatus,
        EntityIdBody
    )),
    modifiers(&AccessKeys),
    tags(
        (name = "orchestrators", description = "Starting instances"),
        (name = "instances", description = "Managing instances"),
        (name = "entities", description = "Durable entities: signal, read, list"),
        (name = "functions", description = "What the host has loaded"),
    )
)]
pub struct ApiDoc;

/// The two ways to present an access key, as Durable Functions accepts them.
struct AccessKeys;

impl Modify for AccessKeys {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "code",
            SecurityScheme::ApiKey(ApiKey::Query(ApiKeyValue::new("code"))),
        );
        components.add_security_scheme(
            "functionsKey",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("x-functions-key"))),
        );
    }
}

/// The document as served and checked in: pretty JSON with a final newline.
pub fn document_text() -> String {
    let mut text = ApiDoc::openapi()
        .to_pretty_json()
        .expect("the document serializes");
    text.push('\n');
    text
}

/// `GET openapi.json`: this document.
#[utoipa::path(
    get,
    path = "/runtime/webhooks/durabletask/openapi.json",
    responses((status = 200, description = "The OpenAPI 3 document of this API", body = Object)),
    tag = "instances"
)]
pub(super) async fn document() -> Json<serde_json::Value> {
    Json(serde_json::to_value(ApiDoc::openapi()).expect("the document serializes"))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    /// The checked-in copy must match what the handlers generate.
    /// `REPRISE_BLESS=1 cargo test -p reprise-host openapi` rewrites it.
    #[test]
    fn the_checked_in_openapi_document_is_current() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("openapi.json");
        let generated = super::document_text();
        if std::env::var_os("REPRISE_BLESS").is_some() {
            std::fs::write(&path, &generated).unwrap();
            return;
        }
        let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            checked_in == generated,
            "{} is stale; run `REPRISE_BLESS=1 cargo test -p reprise-host openapi` and commit it",
            path.display()
        );
    }
}
