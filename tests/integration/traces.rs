//! OpenTelemetry traces: a host given `--otlp-endpoint` exports each
//! instance's trace over OTLP/HTTP to a collector, here one in the test
//! process that decodes the requests with the OTLP protobuf types. The
//! start request's `traceparent` is honoured, a sub-orchestration's span
//! is its parent's child, and episodes, activities and timers are under
//! their instance's span.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::StatusCode;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message as _;

use crate::harness::{TestHost, components};

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

/// An OTLP/HTTP collector: keeps every span it receives.
struct Collector {
    url: String,
    spans: Arc<Mutex<Vec<Span>>>,
}

impl Collector {
    async fn start() -> Collector {
        let spans = Arc::new(Mutex::new(Vec::new()));
        let kept = Arc::clone(&spans);
        let app = axum::Router::new().route(
            "/v1/traces",
            axum::routing::post(move |body: Bytes| {
                let kept = Arc::clone(&kept);
                async move { receive(&kept, &body) }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Collector { url, spans }
    }

    /// The span named `name` in trace `trace` (hex), once received.
    async fn span(&self, host: &TestHost, trace: &str, name: &str) -> Span {
        let mut found = self.spans(host, trace, name, 1).await;
        found.swap_remove(0)
    }

    /// Every span named `name` in trace `trace` (hex; any trace if `None`),
    /// once there are `count`.
    async fn spans(&self, host: &TestHost, trace: &str, name: &str, count: usize) -> Vec<Span> {
        let what = format!("{count} spans {name} in trace {trace}");
        host.wait_until(&what, Duration::from_secs(30), async || {
            let found = self.named(name, |span| hex(&span.trace_id) == trace);
            match found.len() >= count {
                true => Ok(found),
                false => Err(format!("spans so far: {:?}", self.names())),
            }
        })
        .await
    }

    /// The spans received named `name` that `keep` keeps.
    fn named(&self, name: &str, keep: impl Fn(&Span) -> bool) -> Vec<Span> {
        let spans = self.spans.lock().unwrap();
        spans
            .iter()
            .filter(|span| span.name == name && keep(span))
            .cloned()
            .collect()
    }

    fn names(&self) -> Vec<String> {
        let spans = self.spans.lock().unwrap();
        spans.iter().map(|span| span.name.clone()).collect()
    }
}

/// Takes one export request: its spans, from service `reprise`.
fn receive(kept: &Mutex<Vec<Span>>, body: &[u8]) -> (StatusCode, Vec<u8>) {
    let Ok(request) = ExportTraceServiceRequest::decode(body) else {
        return (StatusCode::BAD_REQUEST, Vec::new());
    };
    for resource in request.resource_spans {
        let service = resource
            .resource
            .iter()
            .flat_map(|resource| &resource.attributes)
            .find(|attribute| attribute.key == "service.name")
            .and_then(|attribute| attribute.value.as_ref()?.value.clone());
        assert_eq!(service, Some(AnyValue::StringValue("reprise".into())));
        for scope in resource.scope_spans {
            kept.lock().unwrap().extend(scope.spans);
        }
    }
    let response = ExportTraceServiceResponse::default().encode_to_vec();
    (StatusCode::OK, response)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// `POST orchestrators/{name}/{id}` with `body`, and a `traceparent`.
async fn start(host: &TestHost, name: &str, id: &str, body: &str, traceparent: Option<&str>) {
    let mut request = reqwest::Client::new()
        .post(format!("{}/orchestrators/{name}/{id}", host.base))
        .body(body.to_owned());
    if let Some(traceparent) = traceparent {
        request = request.header("traceparent", traceparent);
    }
    let reply = request.send().await.unwrap();
    assert_eq!(reply.status(), reqwest::StatusCode::ACCEPTED);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_instance_trace_reaches_the_collector_with_its_parent_links() {
    let collector = Collector::start().await;
    let c = components();
    let host = TestHost::prepare(&[&c.misbehaving, &c.hello_sequence])
        .with_args(&["--otlp-endpoint", &collector.url])
        .started()
        .await;

    let traceparent = format!("00-{TRACE}-{CALLER_SPAN}-01");
    let child = r#"{"orchestrator": "E1_HelloSequence", "instanceId": "traced-child"}"#;
    start(&host, "Parent", "traced", child, Some(&traceparent)).await;
    start(&host, "Sleeps", "sleeper", "50", None).await;

    // The instance span: in the caller's trace, under the caller's span.
    let parent = collector.span(&host, TRACE, "orchestration Parent").await;
    assert_eq!(hex(&parent.parent_span_id), CALLER_SPAN);
    // The child's: in the same trace, under its parent's instance span.
    let child = collector
        .span(&host, TRACE, "orchestration E1_HelloSequence")
        .await;
    assert_eq!(child.parent_span_id, parent.span_id);
    assert!(child.start_time_unix_nano <= child.end_time_unix_nano);
    assert!(parent.start_time_unix_nano <= child.start_time_unix_nano);
    // Its three activities, under the child's span.
    let activities = collector
        .spans(&host, TRACE, "activity E1_SayHello", 3)
        .await;
    assert!(
        activities
            .iter()
            .all(|span| span.parent_span_id == child.span_id)
    );
    // Episodes under each instance's span.
    let episodes = collector.spans(&host, TRACE, "episode", 2).await;
    for instance in [&parent, &child] {
        assert!(
            episodes
                .iter()
                .any(|episode| episode.parent_span_id == instance.span_id),
            "no episode under {}",
            instance.name
        );
    }

    // A start without traceparent begins a trace of its own; its timer
    // is under its instance span.
    let sleeper_span = host
        .wait_until(
            "the span of orchestration Sleeps",
            Duration::from_secs(30),
            async || {
                let found = collector.named("orchestration Sleeps", |_| true);
                found
                    .into_iter()
                    .next()
                    .ok_or_else(|| format!("spans so far: {:?}", collector.names()))
            },
        )
        .await;
    assert!(sleeper_span.parent_span_id.is_empty());
    let trace = hex(&sleeper_span.trace_id);
    assert_ne!(trace, TRACE);
    let timer = collector.span(&host, &trace, "timer").await;
    assert_eq!(timer.parent_span_id, sleeper_span.span_id);
}
