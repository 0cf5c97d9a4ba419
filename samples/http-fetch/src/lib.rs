//! Outgoing HTTP from an activity. The host lets activities reach only the
//! hosts named with `reprise serve --allow-http-host HOST[:PORT]`; any
//! other request is denied, and the activity reports it.
//!
//! `POST orchestrators/FetchStatus` with body `"http://127.0.0.1:8080/health"`
//! completes with `{"status": 200, "body": "..."}`.

use reprise_sdk::{Error, OrchestrationContext};
use serde::Serialize;

#[derive(Serialize, serde::Deserialize)]
struct Fetched {
    status: u16,
    body: String,
}

async fn fetch_status(ctx: OrchestrationContext) -> Result<Fetched, Error> {
    let url: String = ctx.input()?;
    ctx.call_activity("HttpGet", url).await
}

/// An activity: orchestrators never make requests themselves.
fn http_get(url: String) -> Result<Fetched, Error> {
    let response = waki::Client::new()
        .get(&url)
        .send()
        .map_err(|error| Error::new(format!("GET {url} failed: {error}")))?;
    let status = response.status_code();
    let body = response
        .body()
        .map_err(|error| Error::new(format!("GET {url}: cannot read the body: {error}")))?;
    Ok(Fetched {
        status,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

reprise_sdk::export! {
    orchestrators { "FetchStatus" => fetch_status }
    activities { "HttpGet" => http_get }
}
