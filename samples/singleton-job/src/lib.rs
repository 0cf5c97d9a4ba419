//! A singleton background job, the pattern of the Durable Functions
//! "singleton orchestrators" page.
//!
//! Start it under a well-known ID (`POST orchestrators/SingletonJob/nightly-report`):
//! while it runs, a second start under that ID gets 409 Conflict, atomically,
//! however many arrive at once. It processes "work" events, one generation per
//! event (continue-as-new keeps its history short), and completes when it
//! receives "stop". Once finished, the same ID can be started again.

use reprise_sdk::{Error, OrchestrationContext};
use serde::{Deserialize, Serialize};

/// The job's state, carried from generation to generation.
#[derive(Debug, Default, Serialize, Deserialize)]
struct JobState {
    /// Work items processed so far.
    processed: u64,
    /// The last work item's payload.
    last: Option<serde_json::Value>,
}

async fn singleton_job(ctx: OrchestrationContext) -> Result<JobState, Error> {
    let mut state: JobState = ctx.input::<Option<JobState>>()?.unwrap_or_default();
    ctx.set_custom_status(serde_json::json!({ "processed": state.processed }))?;
    let command: serde_json::Value = ctx.wait_for_event("command").await?;
    if command == "stop" {
        return Ok(state);
    }
    state.processed += 1;
    state.last = Some(command);
    ctx.continue_as_new(state)?;
    Ok(JobState::default())
}

reprise_sdk::export_orchestrators! {
    "SingletonJob" => singleton_job,
}
