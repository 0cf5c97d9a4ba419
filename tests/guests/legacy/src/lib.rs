//! What `tests/fixtures/wit-0.1.0/legacy.wasm` was built from, with the
//! SDK of `reprise:orchestration@0.1.0` (commit a734fd3). It uses every
//! case of that contract, so the host's 0.1.0 bindings are exercised
//! whole:
//! - `Legacy` waits for "go" (an event, and the pin a test deploys a new
//!   host under), calls `Echo` (activity completed), `Broken` (activity
//!   failed), sleeps (timer fired), runs `LegacyChild` (sub-orchestration
//!   completed) and `LegacyFailing` (sub-orchestration failed), sends an
//!   event to itself and reads it back, sets a custom status, returns
//!   what it saw;
//! - `LegacyCounter` adds each "add" to its input and continues as new
//!   (carried-over events), finishing when it reaches its target.

use std::time::Duration;

use reprise_sdk::{Error, OrchestrationContext};

async fn legacy(ctx: OrchestrationContext) -> Result<Vec<String>, Error> {
    let mut seen = Vec::new();
    let go: String = ctx.wait_for_event("go").await?;
    seen.push(format!("go:{go}"));
    let echo: String = ctx.call_activity("Echo", "hello").await?;
    seen.push(format!("echo:{echo}"));
    let broken = ctx.call_activity::<String>("Broken", ()).await;
    seen.push(format!("broken:{}", broken.is_err()));
    ctx.sleep(Duration::from_millis(10)).await;
    seen.push("slept".to_owned());
    let child: String = ctx
        .call_sub_orchestrator("LegacyChild", None, "child")
        .await?;
    seen.push(format!("child:{child}"));
    let failing = ctx
        .call_sub_orchestrator::<String>("LegacyFailing", None, ())
        .await;
    seen.push(format!("failing:{}", failing.is_err()));
    ctx.send_event(&ctx.instance_id(), "self", "note")?;
    let note: String = ctx.wait_for_event("self").await?;
    seen.push(format!("self:{note}"));
    ctx.set_custom_status("done")?;
    Ok(seen)
}

async fn legacy_child(ctx: OrchestrationContext) -> Result<String, Error> {
    let input: String = ctx.input()?;
    ctx.call_activity("Echo", input).await
}

async fn legacy_failing(_ctx: OrchestrationContext) -> Result<String, Error> {
    Err(Error::new("failing on purpose"))
}

async fn legacy_counter(ctx: OrchestrationContext) -> Result<u32, Error> {
    let (count, target): (u32, u32) = ctx.input()?;
    if count >= target {
        return Ok(count);
    }
    let add: u32 = ctx.wait_for_event("add").await?;
    ctx.continue_as_new((count + add, target))?;
    Ok(count)
}

fn echo(input: String) -> Result<String, Error> {
    Ok(format!("echo {input}"))
}

fn broken(_: ()) -> Result<String, Error> {
    Err(Error::new("broken on purpose"))
}

reprise_sdk::export! {
    orchestrators {
        "Legacy" => legacy,
        "LegacyChild" => legacy_child,
        "LegacyFailing" => legacy_failing,
        "LegacyCounter" => legacy_counter,
    }
    activities {
        "Echo" => echo,
        "Broken" => broken,
    }
}
