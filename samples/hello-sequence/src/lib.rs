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

#[cfg(test)]
mod tests {
    use reprise_sdk::testing::OrchestrationTest;

    use super::*;

    fn test() -> OrchestrationTest {
        OrchestrationTest::new(hello_sequence).activity("E1_SayHello", say_hello)
    }

    #[test]
    fn greets_the_three_cities_in_order() {
        let mut test = test();
        let greetings: Vec<String> = test.run().output().unwrap();
        assert_eq!(
            greetings,
            ["Hello Tokyo!", "Hello Seattle!", "Hello London!"]
        );
        let cities: Vec<_> = test
            .activities()
            .iter()
            .map(|call| call.input.as_str().unwrap())
            .collect();
        assert_eq!(cities, ["Tokyo", "Seattle", "London"]);
    }

    #[test]
    fn calls_the_next_activity_only_once_the_previous_one_answered() {
        let mut test = test();
        for scheduled in 1..=3 {
            assert!(test.step().is_running());
            assert_eq!(test.activities().len(), scheduled);
        }
        assert!(test.step().output::<Vec<String>>().is_some());
    }

    #[test]
    fn a_failed_greeting_fails_the_sequence_and_ends_it() {
        let mut test = OrchestrationTest::new(hello_sequence).activity(
            "E1_SayHello",
            |city: String| match city.as_str() {
                "Seattle" => Err(Error::new("no route to Seattle")),
                _ => say_hello(city),
            },
        );
        assert_eq!(
            test.run().error(),
            Some("activity 'E1_SayHello' failed: no route to Seattle")
        );
        assert_eq!(test.activities().len(), 2, "London is never greeted");
    }
}
