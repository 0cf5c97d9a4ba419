//! An eternal monitor: wakes every `intervalMs` on a durable timer, records
//! a tick, and continues as new so its history stays short. A "stop" event
//! ends it, at once, with the number of ticks. The timer of each finished
//! generation is dropped by the host.

use std::time::Duration;

use reprise_sdk::{Either, Error, OrchestrationContext, when_either};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Monitor {
    interval_ms: u64,
    #[serde(default)]
    ticks: u64,
}

async fn monitor(ctx: OrchestrationContext) -> Result<u64, Error> {
    let mut state: Monitor = ctx.input()?;
    let stop = ctx.wait_for_event::<serde_json::Value>("stop");
    let tick = ctx.sleep(Duration::from_millis(state.interval_ms));
    match when_either(stop, tick).await {
        Either::Left(_) => Ok(state.ticks),
        Either::Right(()) => {
            state.ticks += 1;
            ctx.set_custom_status(serde_json::json!({ "ticks": state.ticks }))?;
            ctx.continue_as_new(state)?;
            Ok(0)
        }
    }
}

reprise_sdk::export_orchestrators! {
    "Monitor" => monitor,
}
