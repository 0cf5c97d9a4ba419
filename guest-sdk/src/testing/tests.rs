//! The test kit, tested on small orchestrators: each test names the
//! behaviour of the kit it pins down.

use std::time::{Duration, UNIX_EPOCH};

use serde_json::json;

use super::*;
use crate::wire::{CreateTimer, ScheduleActivity, SendEvent};
use crate::{Either, EntityContext, EntityId, Error, RetryPolicy, when_all, when_either};

async fn greet_cities(ctx: OrchestrationContext) -> Result<Vec<String>, Error> {
    let mut greetings = Vec::new();
    for city in ["Tokyo", "Seattle"] {
        greetings.push(ctx.call_activity("SayHello", city).await?);
    }
    Ok(greetings)
}

fn say_hello(city: String) -> Result<String, Error> {
    Ok(format!("Hello {city}!"))
}

async fn wait_for_approval(ctx: OrchestrationContext) -> Result<String, Error> {
    ctx.set_custom_status("waiting")?;
    let answer = ctx.wait_for_event_with_timeout::<bool>("approval", Duration::from_secs(60));
    Ok(match answer.await? {
        Some(true) => "approved",
        Some(false) => "rejected",
        None => "timed out",
    }
    .to_owned())
}

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

fn millis(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
}

#[test]
fn the_real_activity_function_answers_each_call_in_order() {
    let mut test = OrchestrationTest::new(greet_cities).activity("SayHello", say_hello);
    let outcome = test.run();
    assert_eq!(
        outcome.output::<Vec<String>>().unwrap(),
        ["Hello Tokyo!", "Hello Seattle!"]
    );
    let calls: Vec<_> = test
        .activities()
        .iter()
        .map(|call| (call.name.as_str(), call.input.clone(), call.result.clone()))
        .collect();
    assert_eq!(
        calls,
        [
            ("SayHello", json!("Tokyo"), Some(Ok(json!("Hello Tokyo!")))),
            (
                "SayHello",
                json!("Seattle"),
                Some(Ok(json!("Hello Seattle!")))
            ),
        ]
    );
}

#[test]
fn a_fixed_activity_result_answers_every_call() {
    let mut test = OrchestrationTest::new(greet_cities).activity_result("SayHello", "hi");
    assert_eq!(test.run(), Outcome::Completed(json!(["hi", "hi"])));
}

#[test]
fn a_scripted_activity_error_is_the_error_the_orchestrator_sees() {
    let mut test = OrchestrationTest::new(greet_cities).activity_error("SayHello", "boom");
    assert_eq!(
        test.run(),
        Outcome::Failed(Error::new("activity 'SayHello' failed: boom"))
    );
    assert_eq!(test.activities()[0].result, Some(Err("boom".to_owned())));
}

#[test]
fn an_input_of_the_wrong_shape_fails_the_activity_as_on_the_host() {
    let mut test =
        OrchestrationTest::new(greet_cities).activity("SayHello", |n: u32| Ok::<_, Error>(n));
    let error = test.run().error().unwrap().to_owned();
    assert!(
        error.starts_with(
            "activity 'SayHello' failed: the activity's input does not have the expected shape"
        ),
        "{error}"
    );
}

#[test]
fn results_arrive_in_the_episode_after_the_one_that_scheduled_them() {
    async fn fans_out(ctx: OrchestrationContext) -> Result<u32, Error> {
        let calls = (1..=3).map(|n| ctx.call_activity::<u32>("Double", n));
        when_all(calls).await.into_iter().sum()
    }
    let mut test =
        OrchestrationTest::new(fans_out).activity("Double", |n: u32| Ok::<_, Error>(n * 2));
    assert_eq!(test.step(), Outcome::Running);
    assert_eq!(test.activities().len(), 3, "all three scheduled at once");
    assert_eq!(test.step(), Outcome::Completed(json!(12)));
}

#[test]
fn a_closure_can_answer_differently_each_time() {
    async fn retries(ctx: OrchestrationContext) -> Result<String, Error> {
        let policy = RetryPolicy::new(3, Duration::from_secs(5));
        ctx.call_activity_with_retry("Flaky", (), &policy).await
    }
    let mut attempts = 0;
    let mut test = OrchestrationTest::new(retries).activity("Flaky", move |()| {
        attempts += 1;
        match attempts {
            1 => Err("not yet"),
            _ => Ok(format!("done after {attempts}")),
        }
    });
    assert_eq!(test.run(), Outcome::Running, "waits for the retry timer");
    let retry_at = test.now() + Duration::from_secs(5);
    assert_eq!(test.next_timer(), Some(retry_at));
    assert_eq!(
        test.advance_to(retry_at),
        Outcome::Completed(json!("done after 2"))
    );
}

#[test]
fn an_event_raised_while_the_orchestrator_waits_is_delivered() {
    let mut test = OrchestrationTest::new(wait_for_approval);
    assert_eq!(test.run(), Outcome::Running);
    assert_eq!(
        test.raise_event("approval", true),
        Outcome::Completed(json!("approved"))
    );
}

#[test]
fn an_event_queued_before_the_start_arrives_with_it() {
    let mut test = OrchestrationTest::new(wait_for_approval);
    test.queue_event("approval", false);
    assert_eq!(test.run(), Outcome::Completed(json!("rejected")));
}

#[test]
fn a_queued_event_arrives_in_the_same_episode_as_results_on_their_way() {
    async fn call_then_wait(ctx: OrchestrationContext) -> Result<(String, String), Error> {
        let call = ctx.call_activity::<String>("Slow", ());
        let event = ctx.wait_for_event::<String>("news");
        match when_either(call, event).await {
            Either::Left(output) => Ok(("activity".to_owned(), output?)),
            Either::Right(news) => Ok(("event".to_owned(), news?)),
        }
    }
    let mut test = OrchestrationTest::new(call_then_wait).activity_result("Slow", "late");
    test.step();
    test.queue_event("news", "early");
    // The result was queued first, so it wins the race.
    assert_eq!(test.run(), Outcome::Completed(json!(["activity", "late"])));
}

#[test]
fn a_timer_fires_when_the_clock_reaches_it_and_not_before() {
    let mut test = OrchestrationTest::new(wait_for_approval);
    assert_eq!(test.advance(Duration::from_secs(59)), Outcome::Running);
    assert_eq!(
        test.advance(Duration::from_secs(1)),
        Outcome::Completed(json!("timed out"))
    );
}

#[test]
fn the_clock_starts_on_new_year_2026_and_reads_the_due_time_while_delivering() {
    async fn naps(ctx: OrchestrationContext) -> Result<(u64, u64), Error> {
        let before = ctx.current_time();
        ctx.sleep(Duration::from_secs(10)).await;
        Ok((millis(before), millis(ctx.current_time())))
    }
    let mut test = OrchestrationTest::new(naps);
    let start = millis(test.now());
    assert_eq!(start, 1_767_225_600_000);
    test.advance(Duration::from_secs(3600));
    assert_eq!(test.outcome().output(), Some((start, start + 10_000)));
    assert_eq!(millis(test.now()), start + 3_600_000);
    assert_eq!(
        test.timers(),
        [CreatedTimer {
            created_at: to_time(start),
            fire_at: to_time(start + 10_000),
        }]
    );
}

#[test]
fn a_chosen_start_time_is_the_first_episodes_time() {
    async fn now(ctx: OrchestrationContext) -> Result<u64, Error> {
        Ok(millis(ctx.current_time()))
    }
    let start = UNIX_EPOCH + Duration::from_secs(1_000);
    let mut test = OrchestrationTest::new(now).start_time(start);
    assert_eq!(test.run().output(), Some(1_000_000u64));
}

#[test]
fn a_timer_already_due_fires_without_moving_the_clock() {
    async fn no_wait(ctx: OrchestrationContext) -> Result<(), Error> {
        ctx.sleep(Duration::ZERO).await;
        Ok(())
    }
    let mut test = OrchestrationTest::new(no_wait);
    assert_eq!(test.run(), Outcome::Completed(json!(null)));
}

#[test]
fn an_event_raised_at_a_virtual_time_races_the_timers_in_time_order() {
    let mut early = OrchestrationTest::new(wait_for_approval);
    early.raise_event_after(Duration::from_secs(30), "approval", true);
    assert_eq!(
        early.advance(Duration::from_secs(120)),
        Outcome::Completed(json!("approved"))
    );

    let mut late = OrchestrationTest::new(wait_for_approval);
    late.raise_event_after(Duration::from_secs(90), "approval", true);
    assert_eq!(
        late.advance(Duration::from_secs(120)),
        Outcome::Completed(json!("timed out"))
    );
}

#[test]
fn sub_orchestrations_are_answered_by_a_closure_on_their_input() {
    async fn parent(ctx: OrchestrationContext) -> Result<Vec<u32>, Error> {
        let first: u32 = ctx.call_sub_orchestrator("Square", None, 3).await?;
        let second: u32 = ctx
            .call_sub_orchestrator("Square", Some("child-b"), 4)
            .await?;
        Ok(vec![first, second])
    }
    let mut test = OrchestrationTest::new(parent)
        .instance_id("parent")
        .sub_orchestration("Square", |n: u32| Ok::<_, Error>(n * n));
    assert_eq!(test.run(), Outcome::Completed(json!([9, 16])));
    let children: Vec<_> = test
        .sub_orchestrations()
        .iter()
        .map(|child| {
            (
                child.instance_id.as_str(),
                child.input.clone(),
                child.result.clone(),
            )
        })
        .collect();
    assert_eq!(
        children,
        [
            ("parent:0:0", json!(3), Ok(json!(9))),
            ("child-b", json!(4), Ok(json!(16))),
        ]
    );
}

#[test]
fn a_failed_sub_orchestration_is_the_error_the_parent_sees() {
    async fn parent(ctx: OrchestrationContext) -> Result<u32, Error> {
        ctx.call_sub_orchestrator("Child", None, ()).await
    }
    let mut failing = OrchestrationTest::new(parent).sub_orchestration_error("Child", "no");
    assert_eq!(
        failing.run().error(),
        Some("sub-orchestration 'Child' failed: no")
    );

    let mut fixed = OrchestrationTest::new(parent).sub_orchestration_result("Child", 7);
    assert_eq!(fixed.run().output(), Some(7));
}

#[test]
fn an_error_fails_the_orchestration_with_its_message() {
    async fn refuses(ctx: OrchestrationContext) -> Result<(), Error> {
        let reason: String = ctx.input()?;
        Err(Error::new(reason))
    }
    let mut test = OrchestrationTest::new(refuses).input("not today");
    assert_eq!(test.run(), Outcome::Failed(Error::new("not today")));
}

#[test]
fn the_custom_status_is_the_latest_one_set() {
    let mut test = OrchestrationTest::new(wait_for_approval);
    assert_eq!(test.custom_status::<String>(), None);
    test.run();
    assert_eq!(test.custom_status::<String>().as_deref(), Some("waiting"));
}

#[test]
fn continue_as_new_stops_the_test_with_the_next_input_and_carried_events() {
    let mut test = OrchestrationTest::new(counter).input(41);
    test.queue_event("operation", "incr");
    test.queue_event("operation", "decr");
    let outcome = test.run();
    assert_eq!(outcome.next_input::<i64>(), Some(42));
    assert_eq!(
        outcome,
        Outcome::ContinuedAsNew {
            input: json!(42),
            carried_over_events: vec![RaisedEvent {
                name: "operation".to_owned(),
                payload: json!("decr"),
            }],
        }
    );
}

#[test]
fn a_followed_continue_as_new_starts_the_next_generation_with_carried_events_first() {
    let mut test = OrchestrationTest::new(counter).follow_continue_as_new();
    test.queue_event("operation", "incr");
    test.queue_event("operation", "incr");
    assert_eq!(test.run(), Outcome::Running);
    assert_eq!((test.generation(), test.generation_input::<i64>()), (2, 2));
    assert_eq!(
        test.raise_event("operation", "end"),
        Outcome::Completed(json!(2))
    );
}

#[test]
fn timers_of_a_generation_that_continued_as_new_never_fire() {
    async fn ticks(ctx: OrchestrationContext) -> Result<u32, Error> {
        let ticks: u32 = ctx.input()?;
        let tick = ctx.sleep(Duration::from_secs(10));
        match when_either(ctx.wait_for_event::<()>("stop"), tick).await {
            Either::Left(_) => Ok(ticks),
            Either::Right(()) => {
                ctx.continue_as_new(ticks + 1)?;
                Ok(ticks)
            }
        }
    }
    let mut test = OrchestrationTest::new(ticks)
        .input(0)
        .follow_continue_as_new();
    test.advance(Duration::from_secs(35));
    assert_eq!(test.generation(), 3, "one generation per 10 s");
    assert_eq!(test.raise_event("stop", ()), Outcome::Completed(json!(3)));
    assert_eq!(
        test.next_timer(),
        None,
        "the last generation's timer is dropped"
    );
}

#[test]
fn the_actions_are_listed_in_the_order_taken() {
    async fn acts(ctx: OrchestrationContext) -> Result<(), Error> {
        ctx.set_custom_status(1)?;
        ctx.send_event("other", "ping", "hello")?;
        let _: () = ctx.call_activity("Work", 5).await?;
        ctx.sleep(Duration::from_secs(1)).await;
        Ok(())
    }
    let mut test = OrchestrationTest::new(acts).activity_result("Work", ());
    let start = millis(test.now());
    test.advance(Duration::from_secs(1));
    assert_eq!(
        test.actions(),
        [
            Action::SetCustomStatus("1".into()),
            Action::SendEvent(SendEvent {
                instance_id: "other".into(),
                name: "ping".into(),
                payload: "\"hello\"".into(),
            }),
            Action::ScheduleActivity(ScheduleActivity {
                id: 0,
                name: "Work".into(),
                input: "5".into(),
                attempt: 1,
            }),
            Action::CreateTimer(CreateTimer {
                id: 1,
                fire_at: start + 1_000,
            }),
            Action::Complete("null".into()),
        ]
    );
    assert_eq!(
        test.sent_events(),
        [SentEvent {
            instance_id: "other".into(),
            name: "ping".into(),
            payload: json!("hello"),
        }]
    );
}

#[test]
fn activities_scheduled_as_the_generation_ends_are_not_run() {
    async fn leaves_early(ctx: OrchestrationContext) -> Result<(), Error> {
        let _abandoned = ctx.call_activity::<()>("Unscripted", ());
        Ok(())
    }
    let mut test = OrchestrationTest::new(leaves_early);
    assert_eq!(test.run(), Outcome::Completed(json!(null)));
    assert_eq!(test.activities()[0].result, None);
}

#[test]
fn an_event_due_after_the_end_is_refused() {
    let mut test = OrchestrationTest::new(wait_for_approval);
    test.raise_event_after(Duration::from_secs(120), "approval", true);
    assert_eq!(
        test.advance(Duration::from_secs(300)),
        Outcome::Completed(json!("timed out"))
    );
}

#[test]
fn the_context_sees_the_chosen_name_and_instance_id() {
    async fn identity(ctx: OrchestrationContext) -> Result<(String, String), Error> {
        Ok((ctx.name(), ctx.instance_id()))
    }
    let mut defaults = OrchestrationTest::new(identity);
    assert_eq!(
        defaults.run(),
        Outcome::Completed(json!(["TestOrchestrator", "test-instance"]))
    );
    let mut chosen = OrchestrationTest::new(identity)
        .name("Who")
        .instance_id("me");
    assert_eq!(chosen.run(), Outcome::Completed(json!(["Who", "me"])));
}

#[test]
#[should_panic(
    expected = "the orchestrator called activity 'SayHello' with input \"Tokyo\", but the test scripted no activity of that name"
)]
fn an_unscripted_activity_panics_naming_it() {
    OrchestrationTest::new(greet_cities).run();
}

#[test]
#[should_panic(expected = "scripted no sub-orchestration of that name")]
fn an_unscripted_sub_orchestration_panics_naming_it() {
    async fn parent(ctx: OrchestrationContext) -> Result<(), Error> {
        ctx.call_sub_orchestrator("Child", None, ()).await
    }
    OrchestrationTest::new(parent).run();
}

#[test]
#[should_panic(
    expected = "cannot raise event 'approval': the orchestration has ended (completed with \"approved\")"
)]
fn raising_an_event_after_the_end_panics() {
    let mut test = OrchestrationTest::new(wait_for_approval);
    test.raise_event("approval", true);
    test.raise_event("approval", true);
}

#[test]
#[should_panic(expected = "ran 5 episodes in a row without waiting for the test")]
fn an_orchestrator_that_never_waits_for_the_test_is_stopped() {
    async fn forever(ctx: OrchestrationContext) -> Result<(), Error> {
        loop {
            let _: () = ctx.call_activity("Again", ()).await?;
        }
    }
    OrchestrationTest::new(forever)
        .activity_result("Again", ())
        .max_episodes(5)
        .run();
}

#[test]
#[should_panic(expected = "the virtual clock cannot go back")]
fn moving_the_clock_back_panics() {
    let mut test = OrchestrationTest::new(wait_for_approval);
    let past = test.now() - Duration::from_secs(1);
    test.advance_to(past);
}

#[test]
#[should_panic(expected = "does not decode as")]
fn an_output_of_another_type_panics_with_the_value() {
    let mut test = OrchestrationTest::new(greet_cities).activity_result("SayHello", "hi");
    test.run().output::<u32>();
}

#[test]
#[should_panic(expected = "ran 1000 episodes in a row without waiting for the test")]
fn a_followed_continue_as_new_that_never_waits_is_stopped() {
    async fn restarts(ctx: OrchestrationContext) -> Result<(), Error> {
        let generation: u64 = ctx.input()?;
        ctx.continue_as_new(generation + 1)?;
        Ok(())
    }
    OrchestrationTest::new(restarts)
        .input(0)
        .follow_continue_as_new()
        .run();
}

fn account(ctx: &mut EntityContext) -> Result<i64, Error> {
    let mut balance: i64 = ctx.state_or_default()?;
    match ctx.operation() {
        "deposit" => balance += ctx.input::<i64>()?,
        "withdraw" => {
            let amount: i64 = ctx.input()?;
            if amount > balance {
                return Err(Error::new("insufficient funds").with_kind("insufficient-funds"));
            }
            balance -= amount;
        }
        "balance" => {}
        other => return Err(Error::new(format!("no operation '{other}'"))),
    }
    ctx.set_state(balance)?;
    Ok(balance)
}

fn alice() -> EntityId {
    EntityId::new("Account", "alice")
}

#[test]
fn entity_calls_run_the_entity_function_on_its_state() {
    async fn withdraws(ctx: OrchestrationContext) -> Result<(i64, String), Error> {
        let left: i64 = ctx.call_entity(&alice(), "Withdraw", 30).await?;
        let refused = ctx.call_entity::<i64>(&alice(), "withdraw", 500).await;
        Ok((left, refused.unwrap_err().kind().to_owned()))
    }
    let mut test = OrchestrationTest::new(withdraws)
        .entity("account", account)
        .entity_state(&alice(), 100);
    assert_eq!(
        test.run(),
        Outcome::Completed(json!([70, "insufficient-funds"]))
    );
    assert_eq!(test.entity_state_of::<i64>(&alice()), Some(70));
    let results: Vec<_> = test
        .entity_calls()
        .iter()
        .map(|call| call.result.clone())
        .collect();
    assert_eq!(
        results,
        [Ok(json!(70)), Err("insufficient funds".to_owned())]
    );
}

#[test]
fn signals_are_recorded_and_applied_in_order() {
    async fn deposits(ctx: OrchestrationContext) -> Result<(), Error> {
        ctx.signal_entity(&alice(), "deposit", 5)?;
        ctx.signal_entity(&alice(), "deposit", 7)?;
        ctx.signal_entity(&EntityId::new("Unregistered", "x"), "poke", ())?;
        Ok(())
    }
    let mut test = OrchestrationTest::new(deposits).entity("Account", account);
    assert_eq!(test.run(), Outcome::Completed(json!(null)));
    assert_eq!(test.entity_state_of::<i64>(&alice()), Some(12));
    assert_eq!(test.signals().len(), 3);
    assert_eq!(
        test.signals()[0],
        EntitySignal {
            target: alice(),
            operation: "deposit".into(),
            input: json!(5),
        }
    );
}

#[test]
fn locks_are_granted_at_the_next_episode_and_released_by_the_section() {
    async fn transfers(ctx: OrchestrationContext) -> Result<i64, Error> {
        let bob = EntityId::new("Account", "bob");
        let section = ctx.lock_entities(&[bob.clone(), alice()]).await?;
        let _: i64 = ctx.call_entity(&alice(), "withdraw", 10).await?;
        let balance: i64 = ctx.call_entity(&bob, "deposit", 10).await?;
        section.release();
        Ok(balance)
    }
    let mut test = OrchestrationTest::new(transfers)
        .entity("Account", account)
        .entity_state(&alice(), 10);
    assert_eq!(test.run(), Outcome::Completed(json!(10)));
    assert_eq!(
        test.lock_requests(),
        [vec![alice(), EntityId::new("account", "bob")]]
    );
    assert!(test.actions().contains(&Action::UnlockEntities));
}

#[test]
#[should_panic(expected = "registered no entity named 'account'")]
fn a_call_to_an_unregistered_entity_panics_naming_it() {
    async fn calls(ctx: OrchestrationContext) -> Result<i64, Error> {
        ctx.call_entity(&alice(), "balance", ()).await
    }
    OrchestrationTest::new(calls).run();
}

#[test]
fn an_event_that_wins_over_a_timeout_cancels_the_timer_in_the_clock() {
    let mut test = OrchestrationTest::new(wait_for_approval);
    test.run();
    assert!(test.next_timer().is_some());
    test.raise_event("approval", true);
    assert_eq!(test.next_timer(), None);
    assert!(matches!(
        test.actions()[..],
        [_, _, Action::CancelTimer(0), Action::Complete(_)]
    ));
}

#[test]
fn activities_see_their_context_and_attempt() {
    async fn retries(ctx: OrchestrationContext) -> Result<Vec<String>, Error> {
        let policy = RetryPolicy::new(2, Duration::from_secs(1));
        let first: String = ctx.call_activity_with_retry("Keyed", (), &policy).await?;
        Ok(vec![first])
    }
    let mut test = OrchestrationTest::new(retries)
        .instance_id("order-7")
        .activity("Keyed", |()| {
            let context = crate::ActivityContext::current().unwrap();
            match context.attempt() {
                1 => Err(Error::new("first attempt fails")),
                _ => Ok(context.idempotency_key().to_owned()),
            }
        });
    assert_eq!(
        test.advance(Duration::from_secs(1)),
        Outcome::Completed(json!(["order-7/0/2"]))
    );
    let attempts: Vec<u32> = test.activities().iter().map(|call| call.attempt).collect();
    assert_eq!(attempts, [1, 2]);
}

#[test]
fn a_scripted_failure_keeps_its_kind() {
    async fn calls(ctx: OrchestrationContext) -> Result<(), Error> {
        ctx.call_activity("Slow", ()).await
    }
    let mut test = OrchestrationTest::new(calls)
        .activity_failure("Slow", Error::new("too slow").with_kind("timeout"));
    let outcome = test.run();
    assert!(outcome.failure().unwrap().is_timeout());
    assert_eq!(outcome.error(), Some("activity 'Slow' failed: too slow"));
}

#[test]
fn logs_and_started_orchestrations_are_recorded() {
    async fn starts(ctx: OrchestrationContext) -> Result<(), Error> {
        let id = ctx.start_orchestration("Report", Some("weekly"), 1)?;
        ctx.log(crate::LogLevel::Info, format_args!("started {id}"));
        Ok(())
    }
    let mut test = OrchestrationTest::new(starts);
    test.run();
    assert_eq!(test.logs(), ["INFO started weekly"]);
    assert_eq!(
        test.started_orchestrations(),
        [StartedOrchestration {
            name: "Report".into(),
            instance_id: "weekly".into(),
            input: json!(1),
        }]
    );
}

#[test]
fn an_entity_test_applies_operations_as_the_host_does() {
    fn greeter(ctx: &mut EntityContext) -> Result<u32, Error> {
        let greeted = ctx.state_or_default::<u32>()? + 1;
        if ctx.operation() == "forget" {
            ctx.delete_state();
            return Ok(0);
        }
        ctx.set_state(greeted)?;
        let key = ctx.id().key().to_owned();
        ctx.signal_entity(&EntityId::new("Audit", "log"), "greeted", key)?;
        ctx.start_orchestration("Welcome", Some("w"), greeted)?;
        Ok(greeted)
    }
    let mut test = EntityTest::new(greeter).id(EntityId::new("Greeter", "ann"));
    assert_eq!(test.call::<u32>("GREET", ()), Ok(1));
    assert_eq!(test.call::<u32>("greet", ()), Ok(2));
    assert_eq!(test.state::<u32>(), Some(2));
    assert_eq!(test.signals()[1].input, json!("ann"));
    assert_eq!(test.started_orchestrations().len(), 2);
    assert_eq!(test.call::<u32>("forget", ()), Ok(0));
    assert_eq!(test.state::<u32>(), None);
}
