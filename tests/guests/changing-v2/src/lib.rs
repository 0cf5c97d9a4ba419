//! Version 2 of "Changing", for the version tests. The two versions differ
//! only in the string "v2":
//! - `Changing` sets it as custom status before waiting for "go", so
//!   replaying a v1 history with v2 is non-deterministic;
//! - `ChangingEternal` sets it, waits for "next" and continues as new: the
//!   next generation shows which version it runs on;
//! - `ChangingWithActivity` waits for "go" and returns what activity
//!   `WhichVersion` answers: which version ran the activity.

use reprise_sdk::{Error, OrchestrationContext};

const VERSION: &str = "v2";

async fn changing(ctx: OrchestrationContext) -> Result<String, Error> {
    ctx.set_custom_status(VERSION)?;
    ctx.wait_for_event::<String>("go").await
}

async fn changing_eternal(ctx: OrchestrationContext) -> Result<u32, Error> {
    let generation: u32 = ctx.input().unwrap_or(0);
    ctx.set_custom_status(VERSION)?;
    ctx.wait_for_event::<String>("next").await?;
    ctx.continue_as_new(generation + 1)?;
    Ok(generation)
}

async fn changing_with_activity(ctx: OrchestrationContext) -> Result<String, Error> {
    ctx.wait_for_event::<String>("go").await?;
    ctx.call_activity("WhichVersion", ()).await
}

fn which_version(_: ()) -> Result<String, Error> {
    Ok(VERSION.to_owned())
}

reprise_sdk::export! {
    orchestrators {
        "Changing" => changing,
        "ChangingEternal" => changing_eternal,
        "ChangingWithActivity" => changing_with_activity,
    }
    activities { "WhichVersion" => which_version }
}
