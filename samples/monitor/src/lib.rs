//! An eternal monitor, the Durable Functions monitor pattern: every
//! `intervalMs` (a durable timer) an activity checks an HTTP endpoint; the
//! orchestrator records the result in its custom status and continues as
//! new, so its history stays short however long it runs. A "stop" event
//! ends it at once, with what it saw. The timer of each finished
//! generation is dropped by the host.
//!
//! Start it with `{"url": "http://127.0.0.1:8080/health", "intervalMs":
//! 5000}`; the host must allow the URL's host (`--allow-http-host`).
//! `customStatus` shows `{"checks", "lastStatus", "changes"}`.

use std::time::Duration;

use reprise_sdk::{Either, Error, OrchestrationContext, when_either};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Monitor {
    url: String,
    interval_ms: u64,
    /// What this monitor has seen so far, carried from generation to generation.
    #[serde(default)]
    seen: Seen,
}

#[derive(Serialize, Deserialize, Default, Clone)]
#[serde(rename_all = "camelCase")]
struct Seen {
    checks: u64,
    /// The last HTTP status, or `null` when the endpoint did not answer.
    last_status: Option<u16>,
    /// How often the status differed from the check before.
    changes: u64,
}

async fn monitor(ctx: OrchestrationContext) -> Result<Seen, Error> {
    let mut state: Monitor = ctx.input()?;
    let stop = ctx.wait_for_event::<serde_json::Value>("stop");
    let tick = ctx.sleep(Duration::from_millis(state.interval_ms));
    if let Either::Left(_) = when_either(stop, tick).await {
        return Ok(state.seen);
    }

    // A failed check is an observation, not a reason to stop monitoring.
    let status = ctx
        .call_activity::<u16>("Monitor_Check", &state.url)
        .await
        .ok();
    let seen = &mut state.seen;
    if seen.checks > 0 && seen.last_status != status {
        seen.changes += 1;
    }
    seen.checks += 1;
    seen.last_status = status;
    ctx.set_custom_status(&state.seen)?;
    ctx.continue_as_new(state)?;
    Ok(Seen::default())
}

/// An activity: `GET url`, returning the HTTP status.
fn check(url: String) -> Result<u16, Error> {
    let response = waki::Client::new()
        .get(&url)
        .connect_timeout(Duration::from_secs(5))
        .send()
        .map_err(|error| Error::new(format!("GET {url} failed: {error}")))?;
    Ok(response.status_code())
}

reprise_sdk::export! {
    orchestrators { "Monitor" => monitor }
    activities { "Monitor_Check" => check }
}

#[cfg(test)]
mod tests {
    use reprise_sdk::testing::{OrchestrationTest, Outcome};
    use serde_json::json;

    use super::*;

    const INTERVAL: Duration = Duration::from_secs(5);

    fn monitor_test() -> OrchestrationTest {
        OrchestrationTest::new(monitor).input(json!({
            "url": "http://127.0.0.1:8080/health",
            "intervalMs": 5000,
        }))
    }

    /// Answers each check with the next of `statuses` (`None`: no answer).
    fn answering(statuses: Vec<Option<u16>>) -> impl FnMut(String) -> Result<u16, Error> {
        let mut statuses = statuses.into_iter();
        move |url| {
            statuses
                .next()
                .flatten()
                .ok_or_else(|| Error::new(format!("GET {url} failed")))
        }
    }

    #[test]
    fn checks_once_per_interval_and_continues_as_new() {
        let mut test = monitor_test().activity("Monitor_Check", answering(vec![Some(200)]));
        assert_eq!(test.run(), Outcome::Running);
        assert_eq!(test.next_timer(), Some(test.now() + INTERVAL));
        assert!(
            test.activities().is_empty(),
            "no check before the first tick"
        );

        let outcome = test.advance(INTERVAL);
        let seen = json!({ "checks": 1, "lastStatus": 200, "changes": 0 });
        assert_eq!(test.custom_status(), Some(seen.clone()));
        assert_eq!(
            outcome.next_input(),
            Some(json!({
                "url": "http://127.0.0.1:8080/health",
                "intervalMs": 5000,
                "seen": seen,
            }))
        );
    }

    #[test]
    fn counts_changes_of_status_across_generations() {
        let statuses = vec![Some(200), Some(200), None, Some(200)];
        let mut test = monitor_test()
            .activity("Monitor_Check", answering(statuses))
            .follow_continue_as_new();
        test.advance(INTERVAL * 3);
        assert_eq!(test.generation(), 3);
        assert_eq!(
            test.custom_status(),
            Some(json!({ "checks": 3, "lastStatus": null, "changes": 1 })),
            "a failed check is an observation"
        );
        test.advance(INTERVAL);
        let seen = json!({ "checks": 4, "lastStatus": 200, "changes": 2 });
        assert_eq!(test.custom_status(), Some(seen.clone()));
        assert_eq!(test.raise_event("stop", ()).output(), Some(seen));
    }

    #[test]
    fn stop_ends_it_at_once_with_nothing_checked() {
        let mut test = monitor_test();
        assert_eq!(
            test.raise_event("stop", ()).output(),
            Some(json!({ "checks": 0, "lastStatus": null, "changes": 0 }))
        );
        assert!(test.activities().is_empty());
        assert_eq!(test.next_timer(), None, "the tick's timer is dropped");
    }
}
