//! Fan-out/fan-in: start N activities at once, wait for all, aggregate.
//!
//! `POST orchestrators/FanOutFanIn` with body `10` squares 1..=10 in
//! parallel activities and completes with their sum, 385.

use reprise_sdk::{Error, OrchestrationContext, when_all};

async fn fan_out_fan_in(ctx: OrchestrationContext) -> Result<u64, Error> {
    let count: u64 = ctx.input::<Option<u64>>()?.unwrap_or(10);
    let calls = (1..=count).map(|n| ctx.call_activity::<u64>("Square", n));
    let squares = when_all(calls).await;
    squares.into_iter().sum::<Result<u64, Error>>()
}

fn square(n: u64) -> Result<u64, Error> {
    n.checked_mul(n)
        .ok_or_else(|| Error::new(format!("{n} squared overflows")))
}

reprise_sdk::export! {
    orchestrators { "FanOutFanIn" => fan_out_fan_in }
    activities { "Square" => square }
}
