//! E3_Counter, the stateful counter of the Durable Functions samples.
//!
//! It waits for an "operation" event: "incr" and "decr" change the count and
//! restart the orchestrator with continue-as-new, carrying the count as its
//! input, so the history never grows; "end" completes it with the final count.
//! Operations that arrive while it restarts are carried over, never lost.

use reprise_sdk::{Error, OrchestrationContext};

async fn counter(ctx: OrchestrationContext) -> Result<i64, Error> {
    // An empty start request gives a `null` input: start from zero.
    let mut count: i64 = ctx.input::<Option<i64>>()?.unwrap_or(0);
    let operation: String = ctx.wait_for_event("operation").await?;
    match operation.to_ascii_lowercase().as_str() {
        "incr" => count += 1,
        "decr" => count -= 1,
        "end" => return Ok(count),
        other => ctx.set_custom_status(format!("ignored unknown operation '{other}'"))?,
    }
    ctx.continue_as_new(count)?;
    Ok(count)
}

reprise_sdk::export_orchestrators! {
    "E3_Counter" => counter,
}

#[cfg(test)]
mod tests {
    use reprise_sdk::testing::{OrchestrationTest, Outcome};
    use reprise_sdk::wire::Action;

    use super::*;

    #[test]
    fn an_empty_start_counts_from_zero() {
        let mut test = OrchestrationTest::new(counter);
        assert_eq!(test.run(), Outcome::Running);
        assert_eq!(test.raise_event("operation", "incr").next_input(), Some(1));
    }

    #[test]
    fn incr_and_decr_continue_as_new_with_the_new_count() {
        let mut incremented = OrchestrationTest::new(counter).input(5);
        assert_eq!(
            incremented.raise_event("operation", "incr").next_input(),
            Some(6)
        );
        let mut decremented = OrchestrationTest::new(counter).input(5);
        assert_eq!(
            decremented.raise_event("operation", "DECR").next_input(),
            Some(4),
            "operations are case-insensitive"
        );
    }

    #[test]
    fn end_completes_with_the_count() {
        let mut test = OrchestrationTest::new(counter).input(7);
        assert_eq!(test.raise_event("operation", "end").output(), Some(7));
    }

    #[test]
    fn an_unknown_operation_is_reported_and_the_count_kept() {
        let mut test = OrchestrationTest::new(counter).input(3);
        assert_eq!(
            test.raise_event("operation", "double").next_input(),
            Some(3)
        );
        assert_eq!(
            test.custom_status::<String>().as_deref(),
            Some("ignored unknown operation 'double'")
        );
    }

    #[test]
    fn operations_that_arrive_together_are_carried_over_not_lost() {
        let mut test = OrchestrationTest::new(counter);
        for _ in 0..3 {
            test.queue_event("operation", "incr");
        }
        let Outcome::ContinuedAsNew {
            input,
            carried_over_events,
        } = test.run()
        else {
            panic!("expected a continue-as-new, got {}", test.outcome());
        };
        assert_eq!(input, 1);
        assert_eq!(carried_over_events.len(), 2);
    }

    #[test]
    fn counts_across_generations_until_told_to_end() {
        let mut test = OrchestrationTest::new(counter).follow_continue_as_new();
        for operation in ["incr", "incr", "incr", "decr"] {
            assert_eq!(test.raise_event("operation", operation), Outcome::Running);
        }
        assert_eq!((test.generation(), test.generation_input::<i64>()), (4, 2));
        assert_eq!(test.raise_event("operation", "end").output(), Some(2));
        let generations_ended = test
            .actions()
            .iter()
            .filter(|action| matches!(action, Action::ContinueAsNew(_)))
            .count();
        assert_eq!(generations_ended, 4, "one continue-as-new per operation");
    }
}
