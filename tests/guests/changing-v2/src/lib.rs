//! Version 2 of "Changing": the two versions set different custom statuses
//! before waiting, so replaying a v1 history with v2 is non-deterministic.

use reprise_sdk::{Error, OrchestrationContext};

async fn changing(ctx: OrchestrationContext) -> Result<String, Error> {
    ctx.set_custom_status("v2")?;
    ctx.wait_for_event::<String>("go").await
}

reprise_sdk::export_orchestrators! {
    "Changing" => changing,
}
