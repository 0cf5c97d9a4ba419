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
    let all_at_once = executor(name, input).step(history.clone(), false);
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
        .flat_map(|episode| per_episode.step(episode, false))
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
        vec![Action::Fail(Error::new("out of stock").into_failure())],
    );
}

#[test]
fn a_payload_of_the_wrong_shape_fails_with_the_event_name() {
    let actions = executor("Counter", "0").step(
        vec![
            started("Counter", "0"),
            episode(1),
            event("operation", "42"),
        ],
        false,
    );
    let [Action::Fail(crate::wire::Failure { message, .. })] = actions.as_slice() else {
        panic!("expected one fail action, got {actions:?}");
    };
    assert!(message.contains("event 'operation'"), "{message}");
}

#[test]
fn an_unknown_orchestrator_name_fails_and_lists_the_known_ones() {
    let actions = executor("Nope", "null").step(vec![started("Nope", "null"), episode(1)], false);
    let [Action::Fail(crate::wire::Failure { message, .. })] = actions.as_slice() else {
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
    let first = execution.step(
        vec![
            started("Counter", "0"),
            episode(1),
            event("operation", "\"end\""),
        ],
        false,
    );
    assert_eq!(first, vec![Action::Complete("0".into())]);
    assert_eq!(
        execution.step(vec![episode(2), event("operation", "\"incr\"")], false),
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
    let actions = execution.step(
        vec![
            started("Drops", "null"),
            event("x", "\"first\""),
            episode(1),
        ],
        false,
    );
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
    let actions = one_orchestrator!(passes_on).step(
        vec![started("One", "null"), event("x", "\"x1\""), episode(1)],
        false,
    );
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
    let actions = execution.step(
        vec![
            started("One", "null"),
            event("x", "\"x1\""),
            event("x", "\"x2\""),
            event("x", "\"x3\""),
            episode(1),
        ],
        false,
    );
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
        execution.step(vec![started("One", "null"), episode(1_000)], false),
        vec![timer(0, 1_500)]
    );
    assert_eq!(
        execution.step(vec![episode(1_501), timer_fired(0)], false),
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
        execution.step(vec![started("One", "null"), episode(0)], false),
        vec![timer(0, 10_000)]
    );
    assert_eq!(
        execution.step(
            vec![episode(10_000), timer_fired(0), event("answer", "\"late\"")],
            false
        ),
        vec![
            timer(1, 20_000),
            Action::CancelTimer(1),
            Action::Complete("[null,\"late\"]".into())
        ]
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
        execution.step(vec![started("One", "null"), episode(0)], false),
        vec![timer(0, 1), timer(1, 2), timer(2, 3)]
    );
    assert_eq!(
        execution.step(vec![episode(5), timer_fired(2), timer_fired(0)], false),
        vec![]
    );
    assert_eq!(
        execution.step(vec![episode(6), timer_fired(1)], false),
        vec![Action::Complete("3".into())]
    );
}

#[test]
fn when_any_returns_the_first_to_finish_and_cancels_the_losers() {
    async fn races(ctx: OrchestrationContext) -> Result<usize, Error> {
        let timers = [30, 10, 20].map(|ms| ctx.sleep(std::time::Duration::from_millis(ms)));
        let (winner, ()) = crate::when_any(timers).await;
        // The losers fire later; that must not disturb what comes next.
        let next: String = ctx.wait_for_event("next").await?;
        Ok(winner * 100 + next.len())
    }
    let mut execution = one_orchestrator!(races);
    execution.step(vec![started("One", "null"), episode(0)], false);
    assert_eq!(
        execution.step(vec![episode(10), timer_fired(1)], false),
        vec![Action::CancelTimer(0), Action::CancelTimer(2)]
    );
    assert_eq!(
        execution.step(
            vec![
                episode(30),
                timer_fired(2),
                timer_fired(0),
                event("next", "\"abc\"")
            ],
            false
        ),
        vec![Action::Complete("103".into())]
    );
}

fn scheduled(id: u64, name: &str, input: &str) -> Action {
    attempt(id, name, input, 1)
}

fn attempt(id: u64, name: &str, input: &str, attempt: u32) -> Action {
    Action::ScheduleActivity(crate::wire::ScheduleActivity {
        id,
        name: name.into(),
        input: input.into(),
        attempt,
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
        failure: Error::new(error).into_failure(),
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
        execution.step(vec![started("One", "null"), episode(0)], false),
        vec![scheduled(0, "SayHello", "\"Tokyo\"")]
    );
    assert_eq!(
        execution.step(
            vec![episode(1), activity_completed(0, "\"Hello Tokyo!\"")],
            false
        ),
        vec![scheduled(1, "SayHello", "\"Seattle\"")]
    );
    assert_eq!(
        execution.step(
            vec![episode(2), activity_completed(1, "\"Hello Seattle!\"")],
            false
        ),
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
    execution.step(vec![started("One", "null"), episode(0)], false);
    assert_eq!(
        execution.step(vec![episode(1), activity_failed(0, "disk full")], false),
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
        execution.step(vec![started("One", "null"), episode(0)], false),
        vec![scheduled(0, "Flaky", "1")]
    );
    assert_eq!(
        execution.step(vec![episode(10), activity_failed(0, "no")], false),
        vec![timer(1, 110)]
    );
    assert_eq!(
        execution.step(vec![episode(110), timer_fired(1)], false),
        vec![attempt(2, "Flaky", "1", 2)]
    );
    assert_eq!(
        execution.step(vec![episode(120), activity_failed(2, "no")], false),
        vec![timer(3, 320)]
    );
    assert_eq!(
        execution.step(vec![episode(320), timer_fired(3)], false),
        vec![attempt(4, "Flaky", "1", 3)]
    );
    let last = execution.step(vec![episode(330), activity_failed(4, "still no")], false);
    assert_eq!(
        last,
        vec![Action::Fail(
            Error::new("activity 'Flaky' failed: still no (attempt 3 of 3)").into_failure()
        )]
    );
}

fn failure(kind: &str, message: &str, retryable: bool) -> crate::wire::Failure {
    crate::wire::Failure {
        kind: kind.into(),
        message: message.into(),
        retryable,
    }
}

fn activity_failed_with(id: u64, failure: crate::wire::Failure) -> HistoryEvent {
    HistoryEvent::ActivityFailed(crate::wire::TaskFailed { id, failure })
}

#[test]
fn an_sdk_error_fails_the_orchestration_with_its_kind_and_retryability() {
    async fn refuses(_: OrchestrationContext) -> Result<(), Error> {
        Err(Error::new("no such customer")
            .with_kind("validation")
            .non_retryable())
    }
    let actions = one_orchestrator!(refuses).step(vec![started("One", "null"), episode(0)], false);
    assert_eq!(
        actions,
        [Action::Fail(failure(
            "validation",
            "no such customer",
            false
        ))]
    );
}

#[test]
fn another_error_type_fails_as_a_retryable_error() {
    async fn refuses(_: OrchestrationContext) -> Result<(), String> {
        Err("plain".to_owned())
    }
    let actions = one_orchestrator!(refuses).step(vec![started("One", "null"), episode(0)], false);
    assert_eq!(actions, [Action::Fail(failure("error", "plain", true))]);
}

#[test]
fn an_unknown_orchestrator_fails_as_not_found() {
    let actions = executor("Nope", "null").step(vec![started("Nope", "null"), episode(1)], false);
    let [Action::Fail(failure)] = actions.as_slice() else {
        panic!("expected one fail action, got {actions:?}");
    };
    assert_eq!(
        (failure.kind.as_str(), failure.retryable),
        ("not-found", false)
    );
}

#[test]
fn a_failed_task_is_an_error_of_the_failures_kind() {
    async fn reports(ctx: OrchestrationContext) -> Result<(String, bool, bool), Error> {
        let error = ctx.call_activity::<()>("Slow", ()).await.unwrap_err();
        Ok((error.to_string(), error.is_timeout(), error.is_retryable()))
    }
    let mut execution = one_orchestrator!(reports);
    execution.step(vec![started("One", "null"), episode(0)], false);
    let actions = execution.step(
        vec![
            episode(1),
            activity_failed_with(0, failure("timeout", "ran 30 s", false)),
        ],
        false,
    );
    assert_eq!(
        actions,
        [Action::Complete(
            r#"["activity 'Slow' failed: ran 30 s",true,false]"#.into()
        )]
    );
}

#[test]
fn retries_give_up_at_once_on_a_failure_that_is_not_retryable() {
    async fn retries(ctx: OrchestrationContext) -> Result<String, Error> {
        let policy = crate::RetryPolicy::new(5, std::time::Duration::from_millis(100));
        ctx.call_activity_with_retry("Charge", 1, &policy).await
    }
    let mut execution = one_orchestrator!(retries);
    execution.step(vec![started("One", "null"), episode(0)], false);
    let actions = execution.step(
        vec![
            episode(10),
            activity_failed_with(0, failure("declined", "card declined", false)),
        ],
        false,
    );
    assert_eq!(
        actions,
        [Action::Fail(failure(
            "declined",
            "activity 'Charge' failed: card declined (attempt 1 of 5)",
            false
        ))]
    );
}

#[test]
fn is_replaying_is_the_flag_of_the_step_and_logs_are_written_only_live() {
    async fn logs(ctx: OrchestrationContext) -> Result<Vec<bool>, Error> {
        let mut seen = vec![ctx.is_replaying()];
        ctx.log(crate::LogLevel::Info, "started");
        let _: () = ctx.wait_for_event("go").await?;
        seen.push(ctx.is_replaying());
        ctx.log(crate::LogLevel::Warn, "went\non");
        Ok(seen)
    }
    let lines = Rc::new(RefCell::new(Vec::<String>::new()));
    let mut execution = one_orchestrator!(logs);
    let sink = Rc::clone(&lines);
    execution.set_log_sink(crate::logging::LogSink::new(move |line| {
        sink.borrow_mut().push(line.to_owned());
    }));
    assert_eq!(
        execution.step(vec![started("One", "null"), episode(0)], true),
        []
    );
    assert_eq!(
        execution.step(vec![episode(1), event("go", "null")], false),
        [Action::Complete("[true,false]".into())]
    );
    assert_eq!(*lines.borrow(), ["WARN went", "WARN on"]);
}

#[test]
fn dropping_an_unfired_timer_cancels_it_and_a_fired_one_does_not() {
    async fn drops(ctx: OrchestrationContext) -> Result<(), Error> {
        let fired = ctx.sleep(std::time::Duration::from_millis(1));
        let unfired = ctx.sleep(std::time::Duration::from_millis(100));
        fired.await;
        drop(unfired);
        let _: () = ctx.wait_for_event("end").await?;
        Ok(())
    }
    let mut execution = one_orchestrator!(drops);
    assert_eq!(
        execution.step(vec![started("One", "null"), episode(0)], false),
        [timer(0, 1), timer(1, 100)]
    );
    assert_eq!(
        execution.step(vec![episode(1), timer_fired(0)], false),
        [Action::CancelTimer(1)]
    );
}

#[test]
fn a_timer_dropped_as_the_orchestrator_returns_is_cancelled_but_not_once_the_execution_is_gone() {
    async fn leaves(ctx: OrchestrationContext) -> Result<(), Error> {
        let timer = ctx.sleep(std::time::Duration::from_millis(5));
        let _: () = ctx.wait_for_event("end").await?;
        drop(timer);
        Ok(())
    }
    let mut execution = one_orchestrator!(leaves);
    execution.step(vec![started("One", "null"), episode(0)], false);
    // Dropped as the function returns: cancelled before the terminal action.
    assert_eq!(
        execution.step(vec![episode(1), event("end", "null")], false),
        [Action::CancelTimer(0), Action::Complete("null".into())]
    );

    async fn holds(ctx: OrchestrationContext) -> Result<(), Error> {
        let _timer = ctx.sleep(std::time::Duration::from_millis(5));
        let _: () = ctx.wait_for_event("never").await?;
        Ok(())
    }
    let mut execution = one_orchestrator!(holds);
    execution.step(vec![started("One", "null"), episode(0)], false);
    let state = Rc::clone(&execution.state);
    drop(execution);
    assert_eq!(
        state.borrow().actions,
        [],
        "nothing taken as the execution is dropped"
    );
}

#[test]
fn a_wait_with_timeout_whose_event_comes_first_cancels_its_timer() {
    async fn waits(ctx: OrchestrationContext) -> Result<Option<u32>, Error> {
        ctx.wait_for_event_with_timeout("answer", std::time::Duration::from_secs(1))
            .await
    }
    let mut execution = one_orchestrator!(waits);
    execution.step(vec![started("One", "null"), episode(0)], false);
    assert_eq!(
        execution.step(vec![episode(5), event("answer", "7")], false),
        [Action::CancelTimer(0), Action::Complete("7".into())]
    );
}

#[test]
fn start_orchestration_is_fire_and_forget_with_the_given_or_a_new_id() {
    async fn starts(ctx: OrchestrationContext) -> Result<(String, String), Error> {
        let named = ctx.start_orchestration("Report", Some("weekly"), 2)?;
        let generated = ctx.start_orchestration("Report", None, 3)?;
        Ok((named, generated))
    }
    let actions = one_orchestrator!(starts).step(vec![started("One", "null"), episode(0)], false);
    let [
        Action::StartOrchestration(first),
        Action::StartOrchestration(second),
        Action::Complete(output),
    ] = actions.as_slice()
    else {
        panic!("expected two starts and a completion, got {actions:?}");
    };
    assert_eq!(
        (
            first.name.as_str(),
            first.instance_id.as_str(),
            first.input.as_str()
        ),
        ("Report", "weekly", "2")
    );
    assert!(uuid::Uuid::parse_str(&second.instance_id).is_ok());
    let ids: (String, String) = serde_json::from_str(output).unwrap();
    assert_eq!(ids.1, second.instance_id);
}

fn entity(name: &str, key: &str) -> crate::EntityId {
    crate::EntityId::new(name, key)
}

fn entity_call(id: u64, target: &str, operation: &str, input: &str) -> Action {
    Action::CallEntity(crate::wire::CallEntity {
        id,
        target: target.parse::<crate::EntityId>().unwrap().to_wire(),
        operation: operation.into(),
        input: input.into(),
    })
}

fn lock(id: u64, targets: &[&str]) -> Action {
    Action::LockEntities(crate::wire::LockEntities {
        id,
        targets: targets
            .iter()
            .map(|target| target.parse::<crate::EntityId>().unwrap().to_wire())
            .collect(),
    })
}

#[test]
fn entity_calls_are_tasks_completed_by_their_results() {
    async fn calls(ctx: OrchestrationContext) -> Result<(i64, String), Error> {
        ctx.signal_entity(&entity("Counter", "a"), "add", 1)?;
        let value: i64 = ctx.call_entity(&entity("Counter", "a"), "get", ()).await?;
        let error = ctx
            .call_entity::<i64>(&entity("Counter", "b"), "explode", ())
            .await
            .unwrap_err();
        Ok((value, format!("{}: {error}", error.kind())))
    }
    let mut execution = one_orchestrator!(calls);
    assert_eq!(
        execution.step(vec![started("One", "null"), episode(0)], false),
        [
            Action::SignalEntity(crate::wire::SignalEntity {
                target: entity("counter", "a").to_wire(),
                operation: "add".into(),
                input: "1".into(),
            }),
            entity_call(0, "@counter@a", "get", "null"),
        ]
    );
    let completed = HistoryEvent::EntityCallCompleted(crate::wire::TaskCompleted {
        id: 0,
        output: "1".into(),
    });
    assert_eq!(
        execution.step(vec![episode(1), completed], false),
        [entity_call(1, "@counter@b", "explode", "null")]
    );
    let failed = HistoryEvent::EntityCallFailed(crate::wire::TaskFailed {
        id: 1,
        failure: failure("unknown-operation", "no", false),
    });
    assert_eq!(
        execution.step(vec![episode(2), failed], false),
        [Action::Complete(
            r#"[1,"unknown-operation: operation 'explode' of entity '@counter@b' failed: no"]"#
                .into()
        )]
    );
}

#[test]
fn a_lock_sorts_and_dedupes_its_targets_and_its_release_unlocks() {
    async fn locks(ctx: OrchestrationContext) -> Result<usize, Error> {
        let targets = [entity("B", "1"), entity("a", "2"), entity("b", "1")];
        let section = ctx.lock_entities(&targets).await?;
        let locked = section.entities().len();
        let _: i64 = ctx.call_entity(&entity("a", "2"), "get", ()).await?;
        section.release();
        Ok(locked)
    }
    let mut execution = one_orchestrator!(locks);
    assert_eq!(
        execution.step(vec![started("One", "null"), episode(0)], false),
        [lock(0, &["@a@2", "@b@1"])]
    );
    assert_eq!(
        execution.step(vec![episode(1), HistoryEvent::EntitiesLocked(0)], false),
        [entity_call(1, "@a@2", "get", "null")]
    );
    let completed = HistoryEvent::EntityCallCompleted(crate::wire::TaskCompleted {
        id: 1,
        output: "5".into(),
    });
    assert_eq!(
        execution.step(vec![episode(2), completed], false),
        [Action::UnlockEntities, Action::Complete("2".into())]
    );
}

#[test]
fn a_second_lock_while_one_is_open_is_an_error_and_a_dropped_section_unlocks() {
    async fn locks_twice(ctx: OrchestrationContext) -> Result<String, Error> {
        let _section = ctx.lock_entities(&[entity("a", "1")]).await?;
        let error = ctx.lock_entities(&[entity("b", "1")]).await.unwrap_err();
        let empty = ctx.lock_entities(&[]).await.unwrap_err();
        let _: () = ctx.wait_for_event("end").await?;
        Ok(format!("{} {}", error.kind(), empty.kind()))
    }
    let mut execution = one_orchestrator!(locks_twice);
    execution.step(vec![started("One", "null"), episode(0)], false);
    assert_eq!(
        execution.step(vec![episode(1), HistoryEvent::EntitiesLocked(0)], false),
        []
    );
    assert_eq!(
        execution.step(vec![episode(2), event("end", "null")], false),
        [
            Action::UnlockEntities,
            Action::Complete("\"invalid-operation invalid-operation\"".into())
        ]
    );
}

#[test]
fn an_abandoned_lock_is_released_as_soon_as_it_is_granted() {
    async fn gives_up(ctx: OrchestrationContext) -> Result<(), Error> {
        let lock = ctx.lock_entities(&[entity("a", "1")]);
        let deadline = ctx.sleep(std::time::Duration::from_millis(10));
        if let crate::Either::Right(()) = crate::when_either(lock, deadline).await {
            ctx.wait_for_event::<()>("end").await?;
        }
        Ok(())
    }
    let mut execution = one_orchestrator!(gives_up);
    assert_eq!(
        execution.step(vec![started("One", "null"), episode(0)], false),
        [lock(0, &["@a@1"]), timer(1, 10)]
    );
    assert_eq!(execution.step(vec![episode(10), timer_fired(1)], false), []);
    assert_eq!(
        execution.step(vec![episode(11), HistoryEvent::EntitiesLocked(0)], false),
        [Action::UnlockEntities]
    );
}
