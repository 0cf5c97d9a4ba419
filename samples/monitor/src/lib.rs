//! An eternal monitor, the Durable Functions monitor pattern: every
//! `intervalMs` (a durable timer) an activity checks an HTTP endpoint; the
//! orchestrator records the result in its custom status and continues as
//! new, so its history stays short however long it runs. A "stop" event
//! ends it at once, with what it saw. The timer of each finished
//! generation is dropped by the host.
//!
//! Start it with `{"url": "http://127.0.0.1:8080/health", "intervalMs":
//! 5000}`; the host must allow the URL's host (`--allow-http-host`).
//! `customStatus` shows `{"checks", "lastStatus", "changes"}`.

use std::time::Duration;

use reprise_sdk::{Either, Error, OrchestrationContext, when_either};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Monitor {
    url: String,
    interval_ms: u64,
    /// What this monitor has seen so far, carried from generation to generation.
    #[serde(default)]
    seen: Seen,
}

#[derive(Serialize, Deserialize, Default, Clone)]
#[serde(rename_all = "camelCase")]
struct Seen {
    checks: u64,
    /// The last HTTP status, or `null` when the endpoint did not answer.
    last_status: Option<u16>,
    /// How often the status differed from the check before.
    changes: u64,
}

async fn monitor(ctx: OrchestrationContext) -> Result<Seen, Error> {
    let mut state: Monitor = ctx.input()?;
    let stop = ctx.wait_for_event::<serde_json::Value>("stop");
    let tick = ctx.sleep(Duration::from_millis(state.interval_ms));
    if let Either::Left(_) = when_either(stop, tick).await {
        return Ok(state.seen);
    }

    // A failed check is an observation, not a reason to stop monitoring.
    let status = ctx
        .call_activity::<u16>("Monitor_Check", &state.url)
        .await
        .ok();
    let seen = &mut state.seen;
    if seen.checks > 0 && seen.last_status != status {
        seen.changes += 1;
    }
    seen.checks += 1;
    seen.last_status = status;
    ctx.set_custom_status(&state.seen)?;
    ctx.continue_as_new(state)?;
    Ok(Seen::default())
}

/// An activity: `GET url`, returning the HTTP status.
fn check(url: String) -> Result<u16, Error> {
    let response = waki::Client::new()
        .get(&url)
        .connect_timeout(Duration::from_secs(5))
        .send()
        .map_err(|error| Error::new(format!("GET {url} failed: {error}")))?;
    Ok(response.status_code())
}

reprise_sdk::export! {
    orchestrators { "Monitor" => monitor }
    activities { "Monitor_Check" => check }
}
