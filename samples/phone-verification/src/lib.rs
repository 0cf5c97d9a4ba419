//! E4_SmsPhoneVerification, the human interaction sample of Durable
//! Functions: an activity sends a challenge code; the person has a few
//! attempts to send it back as `SmsChallengeResponse` events, all before
//! one durable deadline. Wrong answers use up attempts; the deadline is
//! kept even across host restarts.
//!
//! `POST orchestrators/E4_SmsPhoneVerification` with
//! `{"phone": "+15555550100", "timeoutSeconds": 90}`, then raise
//! `SmsChallengeResponse` with the code (the "SMS" goes to the host log).
//! Completes with `true` when verified, `false` when the attempts or the
//! time ran out.

use std::hash::{BuildHasher, RandomState};
use std::time::Duration;

use reprise_sdk::{Either, Error, OrchestrationContext, when_either};
use serde::Deserialize;
use serde_json::Value;

/// Answers one challenge accepts.
const ATTEMPTS: u32 = 3;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Request {
    phone: String,
    #[serde(default = "default_timeout")]
    timeout_seconds: u64,
}

fn default_timeout() -> u64 {
    90
}

async fn phone_verification(ctx: OrchestrationContext) -> Result<bool, Error> {
    let request: Request = ctx.input()?;
    let code: u32 = ctx
        .call_activity("E4_SendSmsChallenge", &request.phone)
        .await?;

    // One deadline for all attempts: the timer is created once and raced
    // against each wait for an answer.
    let mut deadline = ctx.sleep(Duration::from_secs(request.timeout_seconds));
    for attempts_left in (1..=ATTEMPTS).rev() {
        ctx.set_custom_status(serde_json::json!({ "attemptsLeft": attempts_left }))?;
        let answer = ctx.wait_for_event::<Value>("SmsChallengeResponse");
        match when_either(answer, &mut deadline).await {
            // A wrong or malformed answer uses up an attempt.
            Either::Left(answer) => {
                if matches(&answer?, code) {
                    return Ok(true);
                }
            }
            Either::Right(()) => break,
        }
    }
    ctx.set_custom_status(serde_json::json!({ "attemptsLeft": 0 }))?;
    Ok(false)
}

/// Whether `answer` is `code`, as a number (`42`) or digits (`"0042"`).
fn matches(answer: &Value, code: u32) -> bool {
    match answer {
        Value::Number(number) => number.as_u64() == Some(u64::from(code)),
        Value::String(digits) => digits.trim().parse::<u32>() == Ok(code),
        _ => false,
    }
}

/// An activity: it may use real randomness (and would call an SMS service).
fn send_sms_challenge(phone: String) -> Result<u32, Error> {
    // Seeded from the host's random source through WASI.
    let code = (RandomState::new().hash_one(&phone) % 10_000) as u32;
    println!("sending challenge code {code:04} to {phone}");
    Ok(code)
}

reprise_sdk::export! {
    orchestrators { "E4_SmsPhoneVerification" => phone_verification }
    activities { "E4_SendSmsChallenge" => send_sms_challenge }
}

#[cfg(test)]
mod tests {
    use reprise_sdk::testing::{OrchestrationTest, Outcome};
    use serde_json::json;

    use super::*;

    const CODE: u32 = 42;

    /// A verification of a phone whose challenge is always `CODE`.
    fn verification() -> OrchestrationTest {
        OrchestrationTest::new(phone_verification)
            .input(json!({ "phone": "+15555550100", "timeoutSeconds": 90 }))
            .activity_result("E4_SendSmsChallenge", CODE)
    }

    fn attempts_left(test: &OrchestrationTest) -> Option<u64> {
        test.custom_status::<Value>()?["attemptsLeft"].as_u64()
    }

    #[test]
    fn the_code_the_real_activity_sent_verifies_the_phone() {
        let mut test = OrchestrationTest::new(phone_verification)
            .input(json!({ "phone": "+15555550100" }))
            .activity("E4_SendSmsChallenge", send_sms_challenge);
        assert_eq!(test.run(), Outcome::Running);
        let sent = &test.activities()[0];
        assert_eq!(sent.input, json!("+15555550100"));
        let code = sent.result.clone().unwrap().unwrap().as_u64().unwrap();
        assert!(code < 10_000);
        let answer = format!("{code:04}");
        assert_eq!(
            test.raise_event("SmsChallengeResponse", answer).output(),
            Some(true)
        );
    }

    #[test]
    fn a_wrong_answer_uses_up_an_attempt() {
        let mut test = verification();
        test.run();
        assert_eq!(attempts_left(&test), Some(3));
        assert!(test.raise_event("SmsChallengeResponse", 7).is_running());
        assert_eq!(attempts_left(&test), Some(2));
        assert!(
            test.raise_event("SmsChallengeResponse", json!({ "code": CODE }))
                .is_running()
        );
        assert_eq!(
            attempts_left(&test),
            Some(1),
            "a malformed answer is wrong too"
        );
        assert_eq!(
            test.raise_event("SmsChallengeResponse", CODE).output(),
            Some(true)
        );
    }

    #[test]
    fn three_wrong_answers_fail_the_verification() {
        let mut test = verification();
        for wrong in [1, 2, 3] {
            test.raise_event("SmsChallengeResponse", wrong);
        }
        assert_eq!(test.outcome().output(), Some(false));
        assert_eq!(attempts_left(&test), Some(0));
    }

    #[test]
    fn one_deadline_covers_every_attempt() {
        let mut test = verification();
        test.raise_event("SmsChallengeResponse", 1);
        assert_eq!(test.advance(Duration::from_secs(89)), Outcome::Running);
        test.raise_event("SmsChallengeResponse", 2);
        assert_eq!(test.advance(Duration::from_secs(1)).output(), Some(false));
        assert_eq!(test.timers().len(), 1, "the deadline is created once");
        assert_eq!(attempts_left(&test), Some(0));
    }

    #[test]
    fn an_answer_after_the_deadline_is_too_late() {
        let mut test = verification();
        test.raise_event_after(Duration::from_secs(91), "SmsChallengeResponse", CODE);
        assert_eq!(test.advance(Duration::from_secs(120)).output(), Some(false));
    }

    #[test]
    fn the_deadline_defaults_to_ninety_seconds() {
        let mut test = OrchestrationTest::new(phone_verification)
            .input(json!({ "phone": "+15555550100" }))
            .activity_result("E4_SendSmsChallenge", CODE);
        test.run();
        assert_eq!(
            test.next_timer(),
            Some(test.now() + Duration::from_secs(90))
        );
    }

    #[test]
    fn a_failed_challenge_fails_the_verification() {
        let mut test = OrchestrationTest::new(phone_verification)
            .input(json!({ "phone": "+15555550100" }))
            .activity_error("E4_SendSmsChallenge", "SMS gateway down");
        assert_eq!(
            test.run().error(),
            Some("activity 'E4_SendSmsChallenge' failed: SMS gateway down")
        );
    }

    #[test]
    fn answers_match_as_numbers_or_digits() {
        assert!(matches(&json!(42), 42));
        assert!(matches(&json!(" 0042 "), 42));
        assert!(!matches(&json!("42a"), 42));
        assert!(!matches(&json!(null), 42));
    }
}
