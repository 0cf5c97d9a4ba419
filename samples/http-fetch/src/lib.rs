//! Outgoing HTTP from an activity. The host lets activities reach only the
//! hosts named with `reprise serve --allow-http-host HOST[:PORT]`; any
//! other request is denied, and the activity reports it.
//!
//! `POST orchestrators/FetchStatus` with body `"http://127.0.0.1:8080/health"`
//! completes with `{"status": 200, "body": "..."}`.

use reprise_sdk::{Error, OrchestrationContext};
use serde::Serialize;

#[derive(Serialize, serde::Deserialize)]
struct Fetched {
    status: u16,
    body: String,
}

async fn fetch_status(ctx: OrchestrationContext) -> Result<Fetched, Error> {
    let url: String = ctx.input()?;
    ctx.call_activity("HttpGet", url).await
}

/// An activity: orchestrators never make requests themselves.
fn http_get(url: String) -> Result<Fetched, Error> {
    let response = waki::Client::new()
        .get(&url)
        .send()
        .map_err(|error| Error::new(format!("GET {url} failed: {error}")))?;
    let status = response.status_code();
    let body = response
        .body()
        .map_err(|error| Error::new(format!("GET {url}: cannot read the body: {error}")))?;
    Ok(Fetched {
        status,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

reprise_sdk::export! {
    orchestrators { "FetchStatus" => fetch_status }
    activities { "HttpGet" => http_get }
}

#[cfg(test)]
mod tests {
    use reprise_sdk::testing::OrchestrationTest;
    use serde_json::json;

    use super::*;

    const URL: &str = "http://127.0.0.1:8080/health";

    #[test]
    fn completes_with_what_the_activity_fetched() {
        let mut test =
            OrchestrationTest::new(fetch_status)
                .input(URL)
                .activity("HttpGet", |url: String| {
                    Ok::<_, Error>(Fetched {
                        status: 200,
                        body: format!("ok from {url}"),
                    })
                });
        assert_eq!(
            test.run().output(),
            Some(json!({ "status": 200, "body": format!("ok from {URL}") }))
        );
        assert_eq!(test.activities()[0].input, json!(URL));
    }

    #[test]
    fn a_denied_request_fails_the_orchestration() {
        let denied = format!("GET {URL} failed: HTTP request denied");
        let mut test = OrchestrationTest::new(fetch_status)
            .input(URL)
            .activity_error("HttpGet", denied.clone());
        assert_eq!(
            test.run().error(),
            Some(format!("activity 'HttpGet' failed: {denied}").as_str())
        );
    }

    #[test]
    fn a_start_without_a_url_fails_before_fetching() {
        let mut test = OrchestrationTest::new(fetch_status);
        assert!(test.run().error().unwrap().contains("input"));
        assert!(test.activities().is_empty());
    }
}
