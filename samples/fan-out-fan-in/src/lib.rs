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

#[cfg(test)]
mod tests {
    use reprise_sdk::testing::OrchestrationTest;

    use super::*;

    #[test]
    fn sums_the_squares_of_one_to_ten_by_default() {
        let mut test = OrchestrationTest::new(fan_out_fan_in).activity("Square", square);
        assert_eq!(test.run().output(), Some(385));
    }

    #[test]
    fn schedules_every_activity_before_any_answers() {
        let mut test = OrchestrationTest::new(fan_out_fan_in)
            .input(4)
            .activity("Square", square);
        assert!(test.step().is_running());
        let inputs: Vec<_> = test
            .activities()
            .iter()
            .map(|call| call.input.as_u64().unwrap())
            .collect();
        assert_eq!(inputs, [1, 2, 3, 4]);
        assert_eq!(test.step().output(), Some(30), "all answers in one episode");
    }

    #[test]
    fn zero_activities_sum_to_zero() {
        let mut test = OrchestrationTest::new(fan_out_fan_in).input(0);
        assert_eq!(test.run().output(), Some(0));
        assert!(test.activities().is_empty());
    }

    #[test]
    fn one_failed_activity_fails_the_sum() {
        let mut test =
            OrchestrationTest::new(fan_out_fan_in)
                .input(3)
                .activity("Square", |n: u64| match n {
                    2 => Err(Error::new("worker lost")),
                    _ => square(n),
                });
        assert_eq!(
            test.run().error(),
            Some("activity 'Square' failed: worker lost")
        );
    }

    #[test]
    fn square_reports_an_overflow() {
        assert_eq!(
            square(u64::MAX).unwrap_err().to_string(),
            format!("{} squared overflows", u64::MAX)
        );
    }
}
