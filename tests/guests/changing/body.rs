// The body both versions of "Changing" share; each crate defines `VERSION`
// and includes this file (see changing-v1/src/lib.rs).

use reprise_sdk::{Error, OrchestrationContext};

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
