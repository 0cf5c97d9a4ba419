//! Activities reach the network through `wasi:http`, but only the hosts the
//! operator allowed with `--allow-http-host`.

use std::sync::Arc;
use std::sync::atomic::AtomicU16;

use crate::harness::{TestHost, components, health_server};

#[tokio::test(flavor = "multi_thread")]
async fn activities_reach_allowed_hosts_and_are_refused_the_rest() {
    let allowed = health_server(Arc::new(AtomicU16::new(200))).await;
    let other = health_server(Arc::new(AtomicU16::new(200))).await;
    let allow = format!("127.0.0.1:{allowed}");
    let host = TestHost::prepare(&[&components().http_fetch])
        .with_args(&["--allow-http-host", &allow])
        .started()
        .await;

    let url = |port: u16| format!("\"http://127.0.0.1:{port}/health\"");
    let fetched = host
        .start_instance("FetchStatus", None, &url(allowed))
        .await;
    let refused = host.start_instance("FetchStatus", None, &url(other)).await;

    let done = host.wait_for_status(&fetched, "Completed").await;
    assert_eq!(done["output"]["status"], 200, "{done}");
    assert_eq!(done["output"]["body"], "ok", "{done}");

    let failed = host.wait_for_status(&refused, "Failed").await;
    let error = failed["output"].as_str().unwrap();
    assert!(
        error.contains(&format!("127.0.0.1:{other}")) && error.contains("HttpRequestDenied"),
        "{error}"
    );
    assert!(
        host.log().contains("outgoing request denied"),
        "{}",
        host.log()
    );
}
