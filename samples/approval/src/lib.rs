//! Human interaction: a request waits for a person's decision, but not
//! forever. The "approval" event races a durable timer; whichever comes
//! first decides. The timer survives host restarts, so a deadline is kept
//! even if the host was down when it passed.
//!
//! Start it with `{"timeoutSeconds": 3600}`, then raise `approval` with
//! `true` or `false`.

use std::time::Duration;

use reprise_sdk::{Error, OrchestrationContext};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Request {
    timeout_seconds: u64,
}

async fn approval(ctx: OrchestrationContext) -> Result<&'static str, Error> {
    let request: Request = ctx.input()?;
    ctx.set_custom_status("waiting for approval")?;
    let timeout = Duration::from_secs(request.timeout_seconds);
    Ok(
        match ctx
            .wait_for_event_with_timeout::<bool>("approval", timeout)
            .await?
        {
            Some(true) => "approved",
            Some(false) => "rejected",
            None => "timed out",
        },
    )
}

reprise_sdk::export_orchestrators! {
    "Approval" => approval,
}
