//! The web dashboard: its files served at the root without the key (the
//! data they show needs it), the API routes it uses (counts, versions,
//! bulk actions over a filter), and the dashboard itself clicked through in
//! headless Chromium (`tests/clients/dashboard.py`, Playwright for Python
//! driving Debian's Chromium).

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;

use crate::clients::{python_client, run_script, sources};
use crate::harness::{TestHost, components};

const KEY: &str = "dashboard-key";

#[tokio::test(flavor = "multi_thread")]
async fn the_root_serves_the_dashboard_and_only_its_data_needs_the_key() {
    let host = TestHost::prepare(&[&components().counter])
        .with_args(&["--key", KEY])
        .started()
        .await;
    let client = reqwest::Client::new();
    let root = host.root_url();
    for (path, content_type) in [
        ("/", "text/html"),
        ("/dashboard/app.js", "text/javascript"),
        ("/dashboard/style.css", "text/css"),
    ] {
        let reply = client.get(format!("{root}{path}")).send().await.unwrap();
        assert_eq!(reply.status(), StatusCode::OK, "{path}");
        let headers = reply.headers().clone();
        assert!(
            headers["content-type"]
                .to_str()
                .unwrap()
                .starts_with(content_type),
            "{path}: {headers:?}"
        );
        // Nothing from elsewhere: no CDN, no inline script; the page's
        // address (which may hold a key) is sent to no one.
        let policy = headers["content-security-policy"].to_str().unwrap();
        assert!(policy.contains("script-src 'self'"), "{policy}");
        assert_eq!(headers["referrer-policy"], "no-referrer");
        let text = reply.text().await.unwrap();
        for elsewhere in ["https://", "http://", "src=\"//", "href=\"//", "url(//"] {
            assert!(!text.contains(elsewhere), "{path} loads from elsewhere");
        }
    }
    let page = client.get(format!("{root}/")).send().await.unwrap();
    let page = page.text().await.unwrap();
    assert!(page.contains("/dashboard/app.js"), "{page}");

    // What the page reads, it reads through the API, which wants the key.
    let counts = format!("{}/counts", host.base);
    let refused = client.get(&counts).send().await.unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    let counted = client
        .get(&counts)
        .header("x-functions-key", KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(counted.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread")]
async fn counts_versions_and_bulk_actions_follow_the_filter() {
    let c = components();
    let host = TestHost::start_with(&[&c.counter, &c.hello_sequence]).await;
    for n in 0..3 {
        host.start_instance("E3_Counter", Some(&format!("bulk-counter-{n}")), "0")
            .await;
    }
    for n in 0..2 {
        let id = format!("bulk-hello-{n}");
        host.start_instance("E1_HelloSequence", Some(&id), "").await;
        host.wait_for_status(&id, "Completed").await;
    }
    for n in 0..3 {
        host.wait_for_status(&format!("bulk-counter-{n}"), "Running")
            .await;
    }

    let counts = host.get("/counts").await;
    assert_eq!(counts.status, StatusCode::OK, "{counts:?}");
    assert_eq!(counts.body["byStatus"]["Running"], 3);
    assert_eq!(counts.body["byStatus"]["Completed"], 2);
    assert_eq!(counts.body["byStatus"]["Failed"], 0);
    assert_eq!(counts.body["total"], 5);
    assert!(counts.body.get("matching").is_none(), "{counts:?}");
    let matching = host
        .get("/counts?name=E3_Counter&instanceIdPrefix=bulk-counter-1")
        .await;
    assert_eq!(
        matching.body["matching"],
        serde_json::json!({"count": 1, "atLeast": false})
    );

    // The list narrows by name and pages newest first.
    let newest = host
        .get("/instances?name=E3_Counter&order=newest&top=2&showInput=false")
        .await;
    let ids: Vec<&str> = ids(&newest.body);
    assert_eq!(ids, ["bulk-counter-2", "bulk-counter-1"]);
    let refused = host.get("/instances?order=sideways").await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert!(refused.message().contains("order"), "{refused:?}");

    // Each loaded file is a version; the counters' has 3 live instances.
    let versions = host.get("/versions").await;
    let live: Vec<u64> = versions
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|version| version["liveInstances"].as_u64().unwrap())
        .collect();
    let mut sorted = live.clone();
    sorted.sort();
    assert_eq!(sorted, [0, 3], "{versions:?}");

    // Terminate over a filter: only what it selects, and only live ones.
    let job = host
        .post(
            "/bulk?action=terminate&instanceIdPrefix=bulk-&reason=tidy",
            "",
        )
        .await;
    assert_eq!(job.status, StatusCode::ACCEPTED, "{job:?}");
    let location = job.header("location").unwrap().to_owned();
    let done = wait_for_job(&host, &location).await;
    assert_eq!(
        (&done["succeeded"], &done["skipped"], &done["failed"]),
        (&Value::from(3), &Value::from(0), &Value::from(0)),
        "{done}"
    );
    for n in 0..3 {
        host.wait_for_status(&format!("bulk-counter-{n}"), "Terminated")
            .await;
    }

    // Purge what is finished among the counters: the hello ones stay.
    let job = host.post("/bulk?action=purge&name=E3_Counter", "").await;
    let done = wait_for_job(&host, job.header("location").unwrap()).await;
    assert_eq!(done["succeeded"], 3, "{done}");
    let counts = host.get("/counts").await;
    assert_eq!(counts.body["total"], 2, "{counts:?}");
    assert_eq!(counts.body["byStatus"]["Completed"], 2);

    // Bad requests change nothing.
    let refused = host.post("/bulk?action=explode", "").await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert!(refused.message().contains("terminate, purge or rewind"));
    let refused = host
        .post("/bulk?action=purge&createdTimeFrom=yesterday", "")
        .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    let unknown = host.get("/bulk/no-such-job").await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert_eq!(host.get("/counts").await.body["total"], 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_dashboard_works_in_headless_chromium() {
    let chromium = chromium();
    let c = components();
    let host = TestHost::prepare(&[&c.approval, &c.hello_sequence, &c.counter])
        .with_args(&["--key", KEY])
        .started()
        .await;
    let mut command = Command::new(python_client());
    command
        .arg(sources().join("dashboard.py"))
        .args(["--url", host.root_url(), "--key", KEY])
        .arg("--chromium")
        .arg(&chromium)
        .env("PYTHONDONTWRITEBYTECODE", "1");
    if let Some(dir) = std::env::var_os("REPRISE_SCREENSHOTS") {
        command.arg("--screenshots").arg(dir);
    }
    run_script(&host, command).await;
}

/// Debian's Chromium (scripts/install-test-deps installs it), or the
/// browser `REPRISE_TEST_CHROMIUM` names.
fn chromium() -> PathBuf {
    let path = std::env::var_os("REPRISE_TEST_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    assert!(
        path.exists(),
        "the dashboard test needs Chromium at {} (scripts/install-test-deps installs Debian's package chromium; or set REPRISE_TEST_CHROMIUM)",
        path.display()
    );
    path
}

fn ids(page: &Value) -> Vec<&str> {
    page.as_array()
        .unwrap()
        .iter()
        .map(|status| status["instanceId"].as_str().unwrap())
        .collect()
}

/// Polls a bulk job until it is done; returns its last progress.
async fn wait_for_job(host: &TestHost, location: &str) -> Value {
    host.wait_until(
        "the bulk job to finish",
        Duration::from_secs(30),
        async || {
            let reply = host
                .get_url(&format!("{}{location}", host.root_url()))
                .await;
            match reply.body["state"].as_str() {
                Some("done") => Ok(reply.body),
                _ => Err(reply.body.to_string()),
            }
        },
    )
    .await
}
