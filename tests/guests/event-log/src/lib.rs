//! Records the payload of every "item" event, in the order applied, and
//! continues as new after each one; "end" completes it with the list.
//!
//! Payloads are unique in the tests, so the output shows exactly which events
//! were applied and whether any was applied twice.

use reprise_sdk::{Error, OrchestrationContext};
use serde_json::Value;

async fn event_log(ctx: OrchestrationContext) -> Result<Vec<Value>, Error> {
    let mut items: Vec<Value> = ctx.input::<Option<Vec<Value>>>()?.unwrap_or_default();
    let item: Value = ctx.wait_for_event("item").await?;
    if item == "end" {
        return Ok(items);
    }
    items.push(item);
    ctx.set_custom_status(items.len())?;
    ctx.continue_as_new(items)?;
    Ok(Vec::new())
}

reprise_sdk::export_orchestrators! {
    "EventLog" => event_log,
}
