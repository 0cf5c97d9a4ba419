//! One trivial orchestrator. `host/benches/startup.rs` copies this component
//! many times, rewriting the digits of its name in the bytes (same length,
//! so the component stays valid), to get many distinct components.

use reprise_sdk::{Error, OrchestrationContext};

async fn probe(_ctx: OrchestrationContext) -> Result<(), Error> {
    Ok(())
}

reprise_sdk::export_orchestrators! {
    "StartupProbe_0000" => probe,
}
