//! E1_HelloSequence, the function chaining sample of Durable Functions:
//! three activity calls in order, their results collected.
//!
//! `POST orchestrators/E1_HelloSequence` completes with
//! `["Hello Tokyo!", "Hello Seattle!", "Hello London!"]`.

use reprise_sdk::{Error, OrchestrationContext};

async fn hello_sequence(ctx: OrchestrationContext) -> Result<Vec<String>, Error> {
    let mut greetings = Vec::new();
    for city in ["Tokyo", "Seattle", "London"] {
        greetings.push(ctx.call_activity("E1_SayHello", city).await?);
    }
    Ok(greetings)
}

/// An activity: not replayed, so it could call a service, read the clock...
fn say_hello(city: String) -> Result<String, Error> {
    Ok(format!("Hello {city}!"))
}

reprise_sdk::export! {
    orchestrators { "E1_HelloSequence" => hello_sequence }
    activities { "E1_SayHello" => say_hello }
}
