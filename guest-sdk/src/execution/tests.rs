//! Histories in, actions out: the executor tested natively, without wasm.

use super::*;
use crate::Error;
use crate::wire::{EventRaised, ExecutionStarted};

struct Samples;

async fn counter(ctx: OrchestrationContext) -> Result<i64, Error> {
    let mut count: i64 = ctx.input::<Option<i64>>()?.unwrap_or(0);
    match ctx.wait_for_event::<String>("operation").await?.as_str() {
        "incr" => count += 1,
        "decr" => count -= 1,
        _ => return Ok(count),
    }
    ctx.continue_as_new(count)?;
    Ok(count)
}

async fn two_events(ctx: OrchestrationContext) -> Result<Vec<String>, Error> {
    ctx.set_custom_status("waiting")?;
    let first: String = ctx.wait_for_event("A").await?;
    let second: String = ctx.wait_for_event("b").await?;
    Ok(vec![first, second])
}

async fn clock_and_identity(ctx: OrchestrationContext) -> Result<(u64, String, String), Error> {
    let before = ctx.current_time();
    let _: () = ctx.wait_for_event("go").await?;
    let after = ctx.current_time();
    let millis = |t: std::time::SystemTime| {
        t.duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64
    };
    Ok((
        millis(after) - millis(before),
        ctx.instance_id(),
        ctx.name(),
    ))
}

async fn fails(ctx: OrchestrationContext) -> Result<(), Error> {
    let reason: String = ctx.input()?;
    Err(Error::new(reason))
}

impl Registry for Samples {
    fn names() -> Vec<String> {
        vec![
            "Counter".into(),
            "TwoEvents".into(),
            "Clock".into(),
            "Fails".into(),
        ]
    }

    fn start(name: &str, context: OrchestrationContext) -> Option<RunningOrchestrator> {
        Some(match name {
            "Counter" => run(counter, context),
            "TwoEvents" => run(two_events, context),
            "Clock" => run(clock_and_identity, context),
            "Fails" => run(fails, context),
            _ => return None,
        })
    }
}

fn started(name: &str, input: &str) -> HistoryEvent {
    HistoryEvent::ExecutionStarted(ExecutionStarted {
        name: name.into(),
        instance_id: "instance-1".into(),
        input: input.into(),
    })
}

fn episode(timestamp: u64) -> HistoryEvent {
    HistoryEvent::OrchestratorStarted(timestamp)
}

fn event(name: &str, payload: &str) -> HistoryEvent {
    HistoryEvent::EventRaised(raised(name, payload))
}

fn raised(name: &str, payload: &str) -> EventRaised {
    EventRaised {
        name: name.into(),
        payload: payload.into(),
    }
}

fn executor(name: &str, input: &str) -> Executor {
    Executor::new::<Samples>(name.into(), "instance-1".into(), input.into())
}

/// Feeds `history` in one step, then again one episode per step (split
/// before each orchestrator-started), and checks both give `expected`: the
/// warm/cold equivalence the host relies on.
fn check(name: &str, input: &str, history: Vec<HistoryEvent>, expected: Vec<Action>) {
    let all_at_once = executor(name, input).step(history.clone());
    assert_eq!(all_at_once, expected, "{name}: whole history in one step");

    let mut episodes: Vec<Vec<HistoryEvent>> = vec![vec![]];
    for event in history {
        if matches!(event, HistoryEvent::OrchestratorStarted(_)) {
            episodes.push(vec![]);
        }
        episodes.last_mut().unwrap().push(event);
    }
    let mut per_episode = executor(name, input);
    let actions: Vec<Action> = episodes
        .into_iter()
        .flat_map(|episode| per_episode.step(episode))
        .collect();
    assert_eq!(actions, expected, "{name}: one episode per step");
}

#[test]
fn counter_waits_without_acting_until_an_operation_arrives() {
    check(
        "Counter",
        "null",
        vec![started("Counter", "null"), episode(1)],
        vec![],
    );
}

#[test]
fn counter_continues_as_new_with_the_incremented_count() {
    check(
        "Counter",
        "41",
        vec![
            started("Counter", "41"),
            episode(1),
            event("operation", "\"incr\""),
        ],
        vec![Action::ContinueAsNew(ContinueAsNew {
            input: "42".into(),
            carried_over_events: vec![],
        })],
    );
}

#[test]
fn events_after_continue_as_new_are_carried_over_in_order() {
    check(
        "Counter",
        "0",
        vec![
            started("Counter", "0"),
            episode(1),
            event("operation", "\"incr\""),
            event("operation", "\"decr\""),
            event("other", "1"),
            event("operation", "\"end\""),
        ],
        vec![Action::ContinueAsNew(ContinueAsNew {
            input: "1".into(),
            carried_over_events: vec![
                raised("operation", "\"decr\""),
                raised("other", "1"),
                raised("operation", "\"end\""),
            ],
        })],
    );
}

#[test]
fn events_raised_before_the_first_episode_are_buffered_not_dropped() {
    // Carried-over events arrive before the orchestrator has run at all.
    check(
        "Counter",
        "5",
        vec![
            started("Counter", "5"),
            event("operation", "\"end\""),
            episode(1),
        ],
        vec![Action::Complete("5".into())],
    );
}

#[test]
fn event_names_are_case_insensitive_and_fifo_per_name() {
    check(
        "TwoEvents",
        "null",
        vec![
            started("TwoEvents", "null"),
            episode(1),
            event("B", "\"b1\""),
            event("b", "\"b2\""),
            event("a", "\"a1\""),
        ],
        vec![
            Action::SetCustomStatus("\"waiting\"".into()),
            Action::Complete("[\"a1\",\"b1\"]".into()),
        ],
    );
}

#[test]
fn current_time_is_the_latest_episode_timestamp() {
    check(
        "Clock",
        "null",
        vec![
            started("Clock", "null"),
            episode(1_000),
            episode(1_250),
            event("go", "null"),
        ],
        vec![Action::Complete("[250,\"instance-1\",\"Clock\"]".into())],
    );
}

#[test]
fn an_error_result_fails_the_orchestration_with_its_message() {
    check(
        "Fails",
        "\"out of stock\"",
        vec![started("Fails", "\"out of stock\""), episode(1)],
        vec![Action::Fail("out of stock".into())],
    );
}

#[test]
fn a_payload_of_the_wrong_shape_fails_with_the_event_name() {
    let actions = executor("Counter", "0").step(vec![
        started("Counter", "0"),
        episode(1),
        event("operation", "42"),
    ]);
    let [Action::Fail(message)] = actions.as_slice() else {
        panic!("expected one fail action, got {actions:?}");
    };
    assert!(message.contains("event 'operation'"), "{message}");
}

#[test]
fn an_unknown_orchestrator_name_fails_and_lists_the_known_ones() {
    let actions = executor("Nope", "null").step(vec![started("Nope", "null"), episode(1)]);
    let [Action::Fail(message)] = actions.as_slice() else {
        panic!("expected one fail action, got {actions:?}");
    };
    assert!(
        message.contains("'Nope'") && message.contains("Counter"),
        "{message}"
    );
}

#[test]
fn nothing_happens_after_the_terminal_action() {
    let mut execution = executor("Counter", "0");
    let first = execution.step(vec![
        started("Counter", "0"),
        episode(1),
        event("operation", "\"end\""),
    ]);
    assert_eq!(first, vec![Action::Complete("0".into())]);
    assert_eq!(
        execution.step(vec![episode(2), event("operation", "\"incr\"")]),
        vec![]
    );
}

#[test]
fn a_dropped_wait_returns_its_event_to_the_buffer() {
    async fn drops_wait(ctx: OrchestrationContext) -> Result<String, Error> {
        drop(ctx.wait_for_event::<String>("x"));
        ctx.wait_for_event("x").await
    }
    struct Drops;
    impl Registry for Drops {
        fn names() -> Vec<String> {
            vec!["Drops".into()]
        }
        fn start(_: &str, context: OrchestrationContext) -> Option<RunningOrchestrator> {
            Some(run(drops_wait, context))
        }
    }
    let mut execution = Executor::new::<Drops>("Drops".into(), "i".into(), "null".into());
    let actions = execution.step(vec![
        started("Drops", "null"),
        event("x", "\"first\""),
        episode(1),
    ]);
    assert_eq!(actions, vec![Action::Complete("\"first\"".into())]);
}

/// An orchestrator registry of one function, for tests of single behaviours.
macro_rules! one_orchestrator {
    ($function:path) => {{
        struct One;
        impl Registry for One {
            fn names() -> Vec<String> {
                vec!["One".into()]
            }
            fn start(_: &str, context: OrchestrationContext) -> Option<RunningOrchestrator> {
                Some(run($function, context))
            }
        }
        Executor::new::<One>("One".into(), "i".into(), "null".into())
    }};
}

#[test]
fn a_dropped_wait_passes_its_event_to_the_next_waiter() {
    async fn passes_on(ctx: OrchestrationContext) -> Result<String, Error> {
        let first = ctx.wait_for_event::<String>("x"); // takes x1
        let second = ctx.wait_for_event::<String>("x"); // waits
        drop(first);
        second.await
    }
    let actions = one_orchestrator!(passes_on).step(vec![
        started("One", "null"),
        event("x", "\"x1\""),
        episode(1),
    ]);
    assert_eq!(actions, vec![Action::Complete("\"x1\"".into())]);
}

#[test]
fn dropped_waits_return_their_events_in_arrival_order() {
    async fn drops_two(ctx: OrchestrationContext) -> Result<Vec<String>, Error> {
        let first: String = ctx.wait_for_event("x").await?;
        let second = ctx.wait_for_event::<String>("X"); // takes x2
        let third = ctx.wait_for_event::<String>("x"); // takes x3
        drop(second);
        drop(third);
        let again: String = ctx.wait_for_event("x").await?;
        Ok(vec![first, again])
    }
    let mut execution = one_orchestrator!(drops_two);
    let actions = execution.step(vec![
        started("One", "null"),
        event("x", "\"x1\""),
        event("x", "\"x2\""),
        event("x", "\"x3\""),
        episode(1),
    ]);
    assert_eq!(actions, vec![Action::Complete("[\"x1\",\"x2\"]".into())]);
}

fn timer_fired(id: u64) -> HistoryEvent {
    HistoryEvent::TimerFired(id)
}

fn timer(id: u64, fire_at: u64) -> Action {
    Action::CreateTimer(crate::wire::CreateTimer { id, fire_at })
}

#[test]
fn sleep_creates_a_durable_timer_and_resumes_when_it_fires() {
    async fn naps(ctx: OrchestrationContext) -> Result<u64, Error> {
        ctx.sleep(std::time::Duration::from_millis(500)).await;
        Ok(ctx
            .current_time()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64)
    }
    let mut execution = one_orchestrator!(naps);
    assert_eq!(
        execution.step(vec![started("One", "null"), episode(1_000)]),
        vec![timer(0, 1_500)]
    );
    assert_eq!(
        execution.step(vec![episode(1_501), timer_fired(0)]),
        vec![Action::Complete("1501".into())]
    );
}

#[test]
fn a_wait_with_timeout_returns_the_event_or_none_and_keeps_late_events() {
    async fn asks_twice(ctx: OrchestrationContext) -> Result<Vec<Option<String>>, Error> {
        let timeout = std::time::Duration::from_secs(10);
        let first = ctx.wait_for_event_with_timeout("answer", timeout).await?;
        let second = ctx.wait_for_event_with_timeout("answer", timeout).await?;
        Ok(vec![first, second])
    }
    let mut execution = one_orchestrator!(asks_twice);
    // The first wait times out; the answer arrives later and goes to the second.
    assert_eq!(
        execution.step(vec![started("One", "null"), episode(0)]),
        vec![timer(0, 10_000)]
    );
    assert_eq!(
        execution.step(vec![
            episode(10_000),
            timer_fired(0),
            event("answer", "\"late\"")
        ]),
        vec![timer(1, 20_000), Action::Complete("[null,\"late\"]".into())]
    );
}

#[test]
fn when_all_waits_for_every_timer_in_any_firing_order() {
    async fn fans_out(ctx: OrchestrationContext) -> Result<usize, Error> {
        let timers = (1..=3).map(|n| ctx.sleep(std::time::Duration::from_millis(n)));
        Ok(crate::when_all(timers).await.len())
    }
    let mut execution = one_orchestrator!(fans_out);
    assert_eq!(
        execution.step(vec![started("One", "null"), episode(0)]),
        vec![timer(0, 1), timer(1, 2), timer(2, 3)]
    );
    assert_eq!(
        execution.step(vec![episode(5), timer_fired(2), timer_fired(0)]),
        vec![]
    );
    assert_eq!(
        execution.step(vec![episode(6), timer_fired(1)]),
        vec![Action::Complete("3".into())]
    );
}

#[test]
fn when_any_returns_the_first_to_finish_and_ignores_the_losers() {
    async fn races(ctx: OrchestrationContext) -> Result<usize, Error> {
        let timers = [30, 10, 20].map(|ms| ctx.sleep(std::time::Duration::from_millis(ms)));
        let (winner, ()) = crate::when_any(timers).await;
        // The losers fire later; that must not disturb what comes next.
        let next: String = ctx.wait_for_event("next").await?;
        Ok(winner * 100 + next.len())
    }
    let mut execution = one_orchestrator!(races);
    execution.step(vec![started("One", "null"), episode(0)]);
    assert_eq!(execution.step(vec![episode(10), timer_fired(1)]), vec![]);
    assert_eq!(
        execution.step(vec![
            episode(30),
            timer_fired(2),
            timer_fired(0),
            event("next", "\"abc\"")
        ]),
        vec![Action::Complete("103".into())]
    );
}

fn scheduled(id: u64, name: &str, input: &str) -> Action {
    Action::ScheduleActivity(crate::wire::ScheduleActivity {
        id,
        name: name.into(),
        input: input.into(),
    })
}

fn activity_completed(id: u64, output: &str) -> HistoryEvent {
    HistoryEvent::ActivityCompleted(crate::wire::TaskCompleted {
        id,
        output: output.into(),
    })
}

fn activity_failed(id: u64, error: &str) -> HistoryEvent {
    HistoryEvent::ActivityFailed(crate::wire::TaskFailed {
        id,
        error: error.into(),
    })
}

#[test]
fn activities_are_scheduled_in_order_and_their_results_matched_by_task_id() {
    async fn sequence(ctx: OrchestrationContext) -> Result<Vec<String>, Error> {
        let mut greetings = Vec::new();
        for city in ["Tokyo", "Seattle"] {
            greetings.push(ctx.call_activity("SayHello", city).await?);
        }
        Ok(greetings)
    }
    let mut execution = one_orchestrator!(sequence);
    assert_eq!(
        execution.step(vec![started("One", "null"), episode(0)]),
        vec![scheduled(0, "SayHello", "\"Tokyo\"")]
    );
    assert_eq!(
        execution.step(vec![episode(1), activity_completed(0, "\"Hello Tokyo!\"")]),
        vec![scheduled(1, "SayHello", "\"Seattle\"")]
    );
    assert_eq!(
        execution.step(vec![
            episode(2),
            activity_completed(1, "\"Hello Seattle!\"")
        ]),
        vec![Action::Complete(
            "[\"Hello Tokyo!\",\"Hello Seattle!\"]".into()
        )]
    );
}

#[test]
fn a_failed_activity_is_an_error_the_orchestrator_sees() {
    async fn reports(ctx: OrchestrationContext) -> Result<String, Error> {
        match ctx.call_activity::<String>("Flaky", ()).await {
            Ok(output) => Ok(output),
            Err(error) => Ok(format!("caught: {error}")),
        }
    }
    let mut execution = one_orchestrator!(reports);
    execution.step(vec![started("One", "null"), episode(0)]);
    assert_eq!(
        execution.step(vec![episode(1), activity_failed(0, "disk full")]),
        vec![Action::Complete(
            "\"caught: activity 'Flaky' failed: disk full\"".into()
        )]
    );
}

#[test]
fn retries_wait_on_durable_timers_with_backoff_then_give_up() {
    async fn retries(ctx: OrchestrationContext) -> Result<String, Error> {
        let policy = crate::RetryPolicy::new(3, std::time::Duration::from_millis(100));
        ctx.call_activity_with_retry("Flaky", 1, &policy).await
    }
    let mut execution = one_orchestrator!(retries);
    assert_eq!(
        execution.step(vec![started("One", "null"), episode(0)]),
        vec![scheduled(0, "Flaky", "1")]
    );
    assert_eq!(
        execution.step(vec![episode(10), activity_failed(0, "no")]),
        vec![timer(1, 110)]
    );
    assert_eq!(
        execution.step(vec![episode(110), timer_fired(1)]),
        vec![scheduled(2, "Flaky", "1")]
    );
    assert_eq!(
        execution.step(vec![episode(120), activity_failed(2, "no")]),
        vec![timer(3, 320)]
    );
    assert_eq!(
        execution.step(vec![episode(320), timer_fired(3)]),
        vec![scheduled(4, "Flaky", "1")]
    );
    let last = execution.step(vec![episode(330), activity_failed(4, "still no")]);
    assert_eq!(
        last,
        vec![Action::Fail(
            "activity 'Flaky' failed: still no (attempt 3 of 3)".into()
        )]
    );
}
