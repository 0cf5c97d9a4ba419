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
