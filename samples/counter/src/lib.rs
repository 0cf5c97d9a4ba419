//! E3_Counter, the stateful counter of the Durable Functions samples.
//!
//! It waits for an "operation" event: "incr" and "decr" change the count and
//! restart the orchestrator with continue-as-new, carrying the count as its
//! input, so the history never grows; "end" completes it with the final count.
//! Operations that arrive while it restarts are carried over, never lost.

use reprise_sdk::{Error, OrchestrationContext};

async fn counter(ctx: OrchestrationContext) -> Result<i64, Error> {
    // An empty start request gives a `null` input: start from zero.
    let mut count: i64 = ctx.input::<Option<i64>>()?.unwrap_or(0);
    let operation: String = ctx.wait_for_event("operation").await?;
    match operation.to_ascii_lowercase().as_str() {
        "incr" => count += 1,
        "decr" => count -= 1,
        "end" => return Ok(count),
        other => ctx.set_custom_status(format!("ignored unknown operation '{other}'"))?,
    }
    ctx.continue_as_new(count)?;
    Ok(count)
}

reprise_sdk::export_orchestrators! {
    "E3_Counter" => counter,
}
