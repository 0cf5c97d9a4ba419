//! Access keys and binding: loopback by default, a key required to listen
//! anywhere else, and with a key every request must carry it.

use reqwest::StatusCode;

use crate::harness::{TestHost, components};

const KEY: &str = "s3cret&key";
const ENCODED_KEY: &str = "s3cret%26key";

#[tokio::test(flavor = "multi_thread")]
async fn without_a_key_the_host_refuses_to_listen_beyond_loopback() {
    let host = TestHost::prepare(&[&components().counter]).listening_on("0.0.0.0:0");
    let log = host.start_expecting_failure();
    assert!(
        log.contains("refusing to listen on 0.0.0.0:0 without an access key")
            && log.contains("--key"),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn with_a_key_every_request_must_carry_it_and_handed_out_urls_do() {
    let host = TestHost::prepare(&[&components().counter])
        .listening_on("0.0.0.0:0")
        .with_args(&["--key", KEY])
        .started()
        .await;
    let client = reqwest::Client::new();
    let start = format!("{}/orchestrators/E3_Counter", host.base);

    // No key, a wrong key, a key in the wrong place: 401, nothing created.
    for request in [
        client.post(&start),
        client.post(&start).header("x-functions-key", "s3cret"),
        client.post(format!("{start}?code=s3cret")),
        client.post(&start).header("authorization", KEY),
        client.get(format!("{}/instances", host.base)),
        client.get(format!("{}/no/such/route", host.base)),
    ] {
        let reply = request.send().await.unwrap();
        assert_eq!(reply.status(), StatusCode::UNAUTHORIZED);
        let body: serde_json::Value = reply.json().await.unwrap();
        let message = body["message"].as_str().unwrap();
        assert!(
            message.contains("access key") && !message.contains(KEY),
            "{message}"
        );
    }

    let reply = client
        .get(format!("{}/instances", host.base))
        .header("x-functions-key", KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), StatusCode::OK);
    assert_eq!(reply.text().await.unwrap(), "[]", "nothing was created");

    // The header works, and so does ?code=; the URLs handed out carry it.
    let started = client
        .post(&start)
        .header("x-functions-key", KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(started.status(), StatusCode::ACCEPTED);
    let links: serde_json::Value = started.json().await.unwrap();
    let status_uri = links["statusQueryGetUri"].as_str().unwrap();
    assert!(
        status_uri.ends_with(&format!("?code={ENCODED_KEY}")),
        "{status_uri}"
    );
    let terminate = links["terminatePostUri"].as_str().unwrap();
    assert!(
        terminate.ends_with(&format!("?reason={{text}}&code={ENCODED_KEY}")),
        "{terminate}"
    );

    let send_event = links["sendEventPostUri"]
        .as_str()
        .unwrap()
        .replace("{eventName}", "operation");
    let raised = host.post_url(&send_event, "\"incr\"").await;
    assert_eq!(raised.status, StatusCode::ACCEPTED);
    let id = links["id"].as_str().unwrap();
    host.wait_until(
        &format!("instance {id} to count the event"),
        std::time::Duration::from_secs(30),
        async || {
            let status = host.get_url(status_uri).await;
            assert!(status.status.is_success(), "{:?}", status.body);
            if status.body["input"] == 1 {
                Ok(())
            } else {
                Err(status.body.to_string())
            }
        },
    )
    .await;
}

/// A web page of another site cannot change anything (its forms and
/// scripts reach a host on loopback too), and a host without a key answers
/// only requests addressed to a loopback name (against DNS rebinding); the
/// host's own dashboard and clients outside a browser are unaffected.
#[tokio::test(flavor = "multi_thread")]
async fn other_sites_pages_cannot_change_anything_and_a_keyless_host_answers_only_loopback_names() {
    let host = TestHost::start_with(&[&components().counter]).await;
    let client = reqwest::Client::new();
    let start = format!("{}/orchestrators/E3_Counter", host.base);
    let own_origin = host.root_url().to_owned();
    for (name, value) in [
        ("origin", "https://evil.example"),
        ("origin", "http://localhost:3000"),
        ("origin", "null"),
        ("sec-fetch-site", "cross-site"),
        ("sec-fetch-site", "same-site"),
    ] {
        let reply = client
            .post(&start)
            .header(name, value)
            .send()
            .await
            .unwrap();
        assert_eq!(reply.status(), StatusCode::FORBIDDEN, "{name}: {value}");
        let body: serde_json::Value = reply.json().await.unwrap();
        assert!(
            body["message"].as_str().unwrap().contains("another site"),
            "{body}"
        );
    }
    // Reading is not changing: a page may not read the answer anyway.
    let reply = client
        .get(format!("{}/instances", host.base))
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), StatusCode::OK);
    assert_eq!(reply.text().await.unwrap(), "[]", "nothing was created");

    // The dashboard's own requests, and clients that are no browser.
    let reply = client
        .post(&start)
        .header("origin", own_origin)
        .header("sec-fetch-site", "same-origin")
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), StatusCode::ACCEPTED);
    let reply = client.post(&start).send().await.unwrap();
    assert_eq!(reply.status(), StatusCode::ACCEPTED);

    // Addressed by another name (a rebound DNS name): refused, even reads.
    let reply = client
        .get(format!("{}/instances", host.base))
        .header("host", "evil.example:7071")
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), StatusCode::FORBIDDEN);
    let body: serde_json::Value = reply.json().await.unwrap();
    assert!(
        body["message"].as_str().unwrap().contains("--key"),
        "{body}"
    );
    let port = host.root_url().rsplit(':').next().unwrap().to_owned();
    let reply = client
        .get(format!("{}/instances", host.base))
        .header("host", format!("localhost:{port}"))
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), StatusCode::OK);
}
