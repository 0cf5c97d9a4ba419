//! What `reprise:orchestration@0.2.0` added, for the integration tests
//! (`tests/integration/contract_features.rs`):
//! - `CancelsItsTimer` waits for "go" with an hour's timeout, then for
//!   "finish": the event comes first, and its timer is cancelled;
//! - `Failures` reports what its activities' failures say: `Reject` fails
//!   for good (tried once under a retry policy), `Slow` runs past its
//!   timeout, `ThirdTimeLucky` fails until its third attempt and returns
//!   its context;
//! - `FailsWithKind` fails with a kind of its own, for good;
//! - `Starter` starts `Echo` on its own and finishes at once;
//! - `Logs` logs once, then waits for "a" and "b".

use std::time::Duration;

use reprise_sdk::{ActivityContext, Error, LogLevel, OrchestrationContext, RetryPolicy};
use serde_json::{Value, json};

async fn cancels_its_timer(ctx: OrchestrationContext) -> Result<Option<String>, Error> {
    let go = ctx
        .wait_for_event_with_timeout("go", Duration::from_secs(3600))
        .await?;
    ctx.wait_for_event::<Value>("finish").await?;
    Ok(go)
}

async fn failures(ctx: OrchestrationContext) -> Result<Value, Error> {
    let policy = RetryPolicy::new(3, Duration::from_millis(10));
    let rejected = ctx
        .call_activity_with_retry::<()>("Reject", (), &policy)
        .await
        .expect_err("Reject fails");
    let slow = ctx
        .call_activity::<()>("Slow", ())
        .await
        .expect_err("Slow times out");
    let lucky: Value = ctx
        .call_activity_with_retry("ThirdTimeLucky", (), &policy)
        .await?;
    Ok(json!({
        "rejected": {
            "kind": rejected.kind(),
            "retryable": rejected.is_retryable(),
            "message": rejected.message(),
        },
        "slow": { "kind": slow.kind(), "timeout": slow.is_timeout() },
        "lucky": lucky,
    }))
}

async fn fails_with_kind(_ctx: OrchestrationContext) -> Result<(), Error> {
    Err(Error::new("the input is not an order")
        .with_kind("validation")
        .non_retryable())
}

async fn starter(ctx: OrchestrationContext) -> Result<String, Error> {
    let id = format!("{}-started", ctx.instance_id());
    ctx.start_orchestration("Echo", Some(&id), "hi")
}

async fn echo(ctx: OrchestrationContext) -> Result<Value, Error> {
    ctx.input()
}

async fn logs(ctx: OrchestrationContext) -> Result<(), Error> {
    ctx.log(
        LogLevel::Info,
        format!("logged once by {}", ctx.instance_id()),
    );
    ctx.wait_for_event::<Value>("a").await?;
    ctx.wait_for_event::<Value>("b").await?;
    Ok(())
}

fn reject(_: ()) -> Result<(), Error> {
    Err(Error::new("no such customer")
        .with_kind("validation")
        .non_retryable())
}

fn slow(_: ()) -> Result<(), Error> {
    loop {
        std::hint::black_box(());
    }
}

fn third_time_lucky(_: ()) -> Result<Value, Error> {
    let context = ActivityContext::current().expect("an activity has a context");
    if context.attempt() < 3 {
        return Err(Error::new(format!("attempt {} fails", context.attempt())));
    }
    Ok(json!({
        "instanceId": context.instance_id(),
        "taskId": context.task_id(),
        "idempotencyKey": context.idempotency_key(),
        "attempt": context.attempt(),
    }))
}

reprise_sdk::export! {
    orchestrators {
        "CancelsItsTimer" => cancels_its_timer,
        "Failures" => failures,
        "FailsWithKind" => fails_with_kind,
        "Starter" => starter,
        "Echo" => echo,
        "Logs" => logs,
    }
    activities {
        "Reject" => reject,
        "Slow" => slow,
        "ThirdTimeLucky" => third_time_lucky,
    }
}
