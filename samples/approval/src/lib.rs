//! Human interaction: a request waits for a person's decision, but not
//! forever. The "approval" event races a durable timer; whichever comes
//! first decides. The timer survives host restarts, so a deadline is kept
//! even if the host was down when it passed.
//!
//! Start it with `{"timeoutSeconds": 3600}`, then raise `approval` with
//! `true` or `false`.

use std::time::Duration;

use reprise_sdk::{Error, OrchestrationContext};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Request {
    timeout_seconds: u64,
}

async fn approval(ctx: OrchestrationContext) -> Result<&'static str, Error> {
    let request: Request = ctx.input()?;
    ctx.set_custom_status("waiting for approval")?;
    let timeout = Duration::from_secs(request.timeout_seconds);
    Ok(
        match ctx
            .wait_for_event_with_timeout::<bool>("approval", timeout)
            .await?
        {
            Some(true) => "approved",
            Some(false) => "rejected",
            None => "timed out",
        },
    )
}

reprise_sdk::export_orchestrators! {
    "Approval" => approval,
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use reprise_sdk::testing::{OrchestrationTest, Outcome};
    use serde_json::json;

    use super::*;

    fn within_an_hour() -> OrchestrationTest {
        OrchestrationTest::new(approval).input(json!({ "timeoutSeconds": 3600 }))
    }

    #[test]
    fn waits_for_a_decision_until_the_deadline() {
        let mut test = within_an_hour();
        assert_eq!(test.run(), Outcome::Running);
        assert_eq!(
            test.custom_status::<String>().as_deref(),
            Some("waiting for approval")
        );
        assert_eq!(
            test.next_timer(),
            Some(test.now() + Duration::from_secs(3600))
        );
    }

    #[test]
    fn an_approval_before_the_deadline_approves() {
        let mut test = within_an_hour();
        test.advance(Duration::from_secs(3599));
        assert_eq!(
            test.raise_event("approval", true).output(),
            Some("approved".to_owned())
        );
    }

    #[test]
    fn a_rejection_rejects() {
        let mut test = within_an_hour();
        assert_eq!(
            test.raise_event("approval", false).output(),
            Some("rejected".to_owned())
        );
    }

    #[test]
    fn without_a_decision_it_times_out_at_the_deadline() {
        let mut test = within_an_hour();
        assert_eq!(test.advance(Duration::from_secs(3599)), Outcome::Running);
        assert_eq!(
            test.advance(Duration::from_secs(1)).output(),
            Some("timed out".to_owned())
        );
    }

    #[test]
    fn a_decision_after_the_deadline_is_too_late() {
        let mut test = within_an_hour();
        test.raise_event_after(Duration::from_secs(3601), "approval", true);
        assert_eq!(
            test.advance(Duration::from_secs(7200)).output(),
            Some("timed out".to_owned())
        );
    }

    #[test]
    fn a_request_without_a_timeout_fails() {
        let mut test = OrchestrationTest::new(approval).input(json!({}));
        let error = test.run().error().unwrap().to_owned();
        assert!(error.contains("timeoutSeconds"), "{error}");
    }
}
