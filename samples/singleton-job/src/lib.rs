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

#[cfg(test)]
mod tests {
    use reprise_sdk::testing::{OrchestrationTest, Outcome};
    use serde_json::json;

    use super::*;

    #[test]
    fn publishes_its_progress_while_it_waits() {
        let mut test = OrchestrationTest::new(singleton_job).instance_id("nightly-report");
        assert_eq!(test.run(), Outcome::Running);
        assert_eq!(test.custom_status(), Some(json!({ "processed": 0 })));
    }

    #[test]
    fn a_work_item_is_processed_in_a_generation_of_its_own() {
        let mut test = OrchestrationTest::new(singleton_job);
        let outcome = test.raise_event("command", json!({ "report": "sales" }));
        assert_eq!(
            outcome.next_input(),
            Some(json!({ "processed": 1, "last": { "report": "sales" } }))
        );
    }

    #[test]
    fn processes_work_until_stopped() {
        let mut test = OrchestrationTest::new(singleton_job).follow_continue_as_new();
        for item in 1..=3 {
            assert_eq!(test.raise_event("command", item), Outcome::Running);
        }
        assert_eq!(test.custom_status(), Some(json!({ "processed": 3 })));
        assert_eq!(
            test.raise_event("command", "stop").output(),
            Some(json!({ "processed": 3, "last": 3 }))
        );
    }

    #[test]
    fn work_queued_behind_a_stop_is_never_processed() {
        let mut test = OrchestrationTest::new(singleton_job).follow_continue_as_new();
        test.queue_event("command", "stop");
        test.queue_event("command", 1);
        assert_eq!(
            test.run().output(),
            Some(json!({ "processed": 0, "last": null }))
        );
    }
}
