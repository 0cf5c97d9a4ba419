//! Orchestrators and activities that misbehave on purpose, to show that the
//! host contains them; one orchestrator that probes what its sandbox lets it
//! see, and one that calls any activity (with retries if asked).

use std::time::{SystemTime, UNIX_EPOCH};

use reprise_sdk::{Error, OrchestrationContext};
use serde_json::{Value, json};

async fn panics(ctx: OrchestrationContext) -> Result<(), Error> {
    let message: String = ctx.input()?;
    panic!("{message}");
}

async fn loops_forever(_ctx: OrchestrationContext) -> Result<(), Error> {
    let mut n: u64 = 0;
    loop {
        n = std::hint::black_box(n.wrapping_add(1));
    }
}

async fn eats_memory(_ctx: OrchestrationContext) -> Result<usize, Error> {
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    loop {
        // Reserved, not touched: it is the memory limit that stops this, not fuel.
        hoard.push(Vec::with_capacity(16 << 20));
        std::hint::black_box(&hoard);
    }
}

async fn continues_forever(ctx: OrchestrationContext) -> Result<(), Error> {
    let round: u64 = ctx.input::<Option<u64>>()?.unwrap_or(0);
    ctx.continue_as_new(round + 1)?;
    Ok(())
}

fn millis(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as u64)
}

/// Reports what the sandbox lets it see, across two episodes: the second
/// one is a cold replay of the first, which must take the same actions.
async fn probe(ctx: OrchestrationContext) -> Result<Value, Error> {
    let uuid = ctx.new_uuid().to_string();
    ctx.set_custom_status(&uuid)?;
    let first_wall_clock = millis(SystemTime::now());
    let first_context_clock = millis(ctx.current_time());
    let _: Value = ctx.wait_for_event("go").await?;
    // Time does not pass inside an episode: sleeping returns at once
    // instead of holding a host thread.
    std::thread::sleep(std::time::Duration::MAX);
    // Far more stderr than the host keeps; writing it must not fail.
    for _ in 0..64 {
        eprintln!("{}", "noise ".repeat(1024));
    }
    Ok(json!({
        "uuid": uuid,
        "wallClockIsEpisodeTime": first_wall_clock == first_context_clock,
        "wallClockNow": millis(SystemTime::now()),
        "contextNow": millis(ctx.current_time()),
        "readDir": std::fs::read_dir("/").map(|_| "allowed".to_owned()).unwrap_or_else(|e| e.to_string()),
        "openFile": std::fs::read("/etc/passwd").map(|_| "allowed".to_owned()).unwrap_or_else(|e| e.to_string()),
        "envVars": std::env::vars().count(),
        "args": std::env::args().count(),
        "tcpConnect": std::net::TcpStream::connect("127.0.0.1:7071").map(|_| "allowed".to_owned()).unwrap_or_else(|e| e.to_string()),
    }))
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Call {
    activity: String,
    #[serde(default)]
    input: Value,
    /// Retry with this many attempts, `interval_ms` apart (doubling).
    attempts: Option<u32>,
    #[serde(default)]
    interval_ms: u64,
}

/// Calls the activity its input names, optionally with retries.
async fn call_activity(ctx: OrchestrationContext) -> Result<Value, Error> {
    let call: Call = ctx.input()?;
    match call.attempts {
        None => ctx.call_activity(&call.activity, call.input).await,
        Some(attempts) => {
            let policy = reprise_sdk::RetryPolicy::new(
                attempts,
                std::time::Duration::from_millis(call.interval_ms),
            );
            ctx.call_activity_with_retry(&call.activity, call.input, &policy)
                .await
        }
    }
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Child {
    orchestrator: String,
    #[serde(default)]
    input: Value,
    instance_id: Option<String>,
}

/// Calls the sub-orchestration its input names; reports its output, or its
/// error with the error's kind and retryability.
async fn parent(ctx: OrchestrationContext) -> Result<Value, Error> {
    let child: Child = ctx.input()?;
    let call = ctx.call_sub_orchestrator::<Value>(
        &child.orchestrator,
        child.instance_id.as_deref(),
        child.input,
    );
    Ok(match call.await {
        Ok(output) => json!({ "output": output }),
        Err(error) => json!({
            "error": error.to_string(),
            "kind": error.kind(),
            "retryable": error.is_retryable(),
        }),
    })
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Send {
    instance_id: String,
    name: String,
    payload: Value,
    #[serde(default = "one")]
    times: u32,
}

fn one() -> u32 {
    1
}

/// Sends its input's event to another instance, `times` times.
async fn sender(ctx: OrchestrationContext) -> Result<(), Error> {
    let send: Send = ctx.input()?;
    for _ in 0..send.times {
        ctx.send_event(&send.instance_id, &send.name, &send.payload)?;
    }
    Ok(())
}

/// Races a fast and a slow `SlowEcho` (input `{"fastMs", "slowMs"}`),
/// shows the winner as its custom status, then waits for "finish" and
/// completes with the winner. The loser completes in the meantime.
async fn race(ctx: OrchestrationContext) -> Result<Value, Error> {
    let input: Value = ctx.input()?;
    let echo = |ms: &Value, value: &str| {
        ctx.call_activity::<Value>("SlowEcho", json!({ "ms": ms, "value": value }))
    };
    let (index, winner) = reprise_sdk::when_any([
        echo(&input["fastMs"], "fast"),
        echo(&input["slowMs"], "slow"),
    ])
    .await;
    let winner = json!({ "index": index, "winner": winner? });
    ctx.set_custom_status(&winner)?;
    ctx.wait_for_event::<Value>("finish").await?;
    Ok(winner)
}

/// Counts "item" events forever, without continue-as-new, so its history
/// grows; shows the count as its custom status. For the warm-execution bench.
async fn accumulates(ctx: OrchestrationContext) -> Result<u64, Error> {
    let mut count: u64 = 0;
    loop {
        ctx.wait_for_event::<Value>("item").await?;
        count += 1;
        ctx.set_custom_status(count)?;
    }
}

/// Sets a custom status of its input's number of bytes (a string of
/// `x`s), then waits for "go" and completes.
async fn sets_status(ctx: OrchestrationContext) -> Result<(), Error> {
    let bytes: usize = ctx.input()?;
    ctx.set_custom_status("x".repeat(bytes.saturating_sub(2)))?;
    ctx.wait_for_event::<Value>("go").await?;
    Ok(())
}

/// Sleeps on a durable timer for its input, in milliseconds.
async fn sleeps(ctx: OrchestrationContext) -> Result<(), Error> {
    let ms: u64 = ctx.input()?;
    ctx.sleep(std::time::Duration::from_millis(ms)).await;
    Ok(())
}

/// Fails: with kind `kind` and not retryable when its input names one
/// (`{"kind": "validation"}`), else with a plain (retryable) error.
fn always_fails(input: Value) -> Result<Value, Error> {
    let error = Error::new(format!("refusing {input}"));
    match input.get("kind").and_then(Value::as_str) {
        Some(kind) => Err(error.with_kind(kind).non_retryable()),
        None => Err(error),
    }
}

fn spins_forever(_: Value) -> Result<Value, Error> {
    let mut n: u64 = 0;
    loop {
        n = std::hint::black_box(n.wrapping_add(1));
    }
}

#[derive(serde::Deserialize)]
struct Echo {
    ms: u64,
    value: Value,
}

/// Sleeps in real time (activities may), then returns `value`.
fn slow_echo(echo: Echo) -> Result<Value, Error> {
    println!("SlowEcho running");
    std::thread::sleep(std::time::Duration::from_millis(echo.ms));
    Ok(echo.value)
}

/// Returns its input: the cheapest activity, for throughput benches.
fn echo(value: Value) -> Result<Value, Error> {
    Ok(value)
}

reprise_sdk::export! {
    orchestrators {
        "Panics" => panics,
        "LoopsForever" => loops_forever,
        "EatsMemory" => eats_memory,
        "ContinuesForever" => continues_forever,
        "Probe" => probe,
        "CallActivity" => call_activity,
        "Parent" => parent,
        "Sender" => sender,
        "Race" => race,
        "Sleeps" => sleeps,
        "Accumulates" => accumulates,
        "SetsStatus" => sets_status,
    }
    activities {
        "AlwaysFails" => always_fails,
        "SpinsForever" => spins_forever,
        "SlowEcho" => slow_echo,
        "Echo" => echo,
    }
}
