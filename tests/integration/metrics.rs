//! `GET /metrics`: the text parses with the official Prometheus parser
//! (the Python client's OpenMetrics parser, which refuses malformed text),
//! its counters move with the work done, its labels never name an
//! instance, and it keeps to the access key like the API.

use std::collections::BTreeSet;
use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;

use crate::clients::{python_client, sources};
use crate::harness::{TestHost, components};

/// One scrape, as the parser read it.
struct Scrape {
    samples: Vec<Value>,
}

impl Scrape {
    /// The value of the sample `name` whose labels include `labels` (0 if
    /// none: a family without samples yet).
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.samples
            .iter()
            .find(|sample| {
                sample["name"] == name
                    && labels
                        .iter()
                        .all(|(label, value)| sample["labels"][label] == *value)
            })
            .map_or(0.0, |sample| sample["value"].as_f64().unwrap())
    }

    fn families(&self) -> BTreeSet<&str> {
        self.samples
            .iter()
            .map(|sample| sample["family"].as_str().unwrap())
            .collect()
    }

    fn label_values(&self) -> impl Iterator<Item = &str> {
        self.samples.iter().flat_map(|sample| {
            sample["labels"]
                .as_object()
                .unwrap()
                .values()
                .map(|value| value.as_str().unwrap())
        })
    }
}

/// `GET /metrics` on `host` (with `key`, if given), parsed.
async fn scrape(host: &TestHost, key: Option<&str>) -> Scrape {
    let mut request = reqwest::Client::new().get(format!("{}/metrics", host.root_url()));
    if let Some(key) = key {
        request = request.header("x-functions-key", key);
    }
    let reply = request.send().await.unwrap();
    assert_eq!(reply.status(), StatusCode::OK);
    let content_type = reply.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    let text = reply.text().await.unwrap();
    let samples = tokio::task::spawn_blocking(move || parse(&text))
        .await
        .unwrap();
    Scrape { samples }
}

/// The samples of `text`, read by the Prometheus client's parser; panics
/// with the parser's complaint if the text is not valid OpenMetrics.
fn parse(text: &str) -> Vec<Value> {
    let mut child = Command::new(python_client())
        .arg(sources().join("parse_metrics.py"))
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the venv's python runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "the Prometheus parser refused the scrape: {}\n{text}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

#[tokio::test]
async fn metrics_parse_as_openmetrics_and_move_with_the_work_done() {
    let c = components();
    let host = TestHost::start_with(&[&c.hello_sequence, &c.misbehaving]).await;
    let before = scrape(&host, None).await;

    for n in 0..3 {
        let id = format!("metrics-hello-{n}");
        host.start_instance("E1_HelloSequence", Some(&id), "").await;
    }
    host.start_instance("Panics", Some("metrics-panics"), "\"on purpose\"")
        .await;
    for id in [
        "metrics-hello-0",
        "metrics-hello-1",
        "metrics-hello-2",
        "metrics-panics",
    ] {
        host.wait_for(id, Duration::from_secs(30), |status| {
            ["Completed", "Failed"].contains(&status["runtimeStatus"].as_str().unwrap_or(""))
        })
        .await;
    }
    let after = scrape(&host, None).await;
    let moved = |name: &str, labels: &[(&str, &str)]| {
        after.value(name, labels) - before.value(name, labels)
    };

    let hello = [("orchestrator", "E1_HelloSequence")];
    assert_eq!(moved("reprise_instances_started_total", &hello), 3.0);
    assert_eq!(moved("reprise_instances_completed_total", &hello), 3.0);
    let panics = [("orchestrator", "Panics")];
    assert_eq!(moved("reprise_instances_failed_total", &panics), 1.0);
    let trap = [("function", "orchestrator"), ("kind", "trap")];
    assert_eq!(moved("reprise_guest_failures_total", &trap), 1.0);
    let say_hello = [("activity", "E1_SayHello"), ("outcome", "completed")];
    assert_eq!(moved("reprise_activities_total", &say_hello), 9.0);
    let started = [
        (
            "route",
            "/runtime/webhooks/durabletask/orchestrators/{function_name}/{instance_id}",
        ),
        ("method", "POST"),
        ("status", "202"),
    ];
    assert_eq!(moved("reprise_http_requests_total", &started), 4.0);
    // At least one episode per instance, each timed; commits observed.
    assert!(moved("reprise_episode_duration_seconds_count", &[]) >= 4.0);
    assert!(moved("reprise_store_commit_writes_count", &[]) >= 4.0);
    // Read from the store at the scrape.
    assert!(after.value("reprise_instances", &[("status", "Completed")]) >= 3.0);
    assert_eq!(after.value("reprise_queued_messages", &[]), 0.0);
    assert_eq!(
        after.value("reprise_functions", &[("kind", "activity")]),
        before.value("reprise_functions", &[("kind", "activity")])
    );
    assert!(after.value("reprise_component_versions", &[]) >= 2.0);
    // Bounded labels: no instance ID, no path with one.
    for value in after.label_values() {
        assert!(
            !value.contains("metrics-"),
            "a label names an instance: {value}"
        );
    }
    // The README lists every metric served; the dashboard uses only those.
    let listed = metric_names("README.md");
    for family in after.families() {
        assert!(listed.contains(family), "{family} is not in the README");
    }
    let unknown: Vec<_> = metric_names("contrib/grafana/reprise.json")
        .difference(&listed)
        .cloned()
        .collect();
    assert!(
        unknown.is_empty(),
        "the dashboard uses unlisted metrics {unknown:?}"
    );
}

/// The metric families a file of the repository names (`reprise_...`,
/// without the suffixes of a counter's or a histogram's samples).
fn metric_names(file: &str) -> BTreeSet<String> {
    let path = sources().join("../..").join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    let mut names = BTreeSet::new();
    for (at, _) in text.match_indices("reprise_") {
        let name: String = text[at..]
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || *c == '_')
            .collect();
        let family = ["_total", "_bucket", "_sum", "_count"]
            .into_iter()
            .find_map(|suffix| name.strip_suffix(suffix))
            .unwrap_or(&name);
        names.insert(family.to_owned());
    }
    names
}

#[tokio::test]
async fn metrics_need_the_access_key_when_one_is_set() {
    let host = TestHost::prepare(&[&components().hello_sequence])
        .with_args(&["--key", "metrics-key"])
        .started()
        .await;
    let url = format!("{}/metrics", host.root_url());
    let refused = reqwest::get(&url).await.unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    let wrong = reqwest::Client::new()
        .get(&url)
        .header("x-functions-key", "other")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    // The refusals are counted, under the route they asked for.
    let scrape = scrape(&host, Some("metrics-key")).await;
    let refusals = [("route", "/metrics"), ("status", "401")];
    assert_eq!(scrape.value("reprise_http_requests_total", &refusals), 2.0);
}
