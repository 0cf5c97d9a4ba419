//! Activities reach the network through `wasi:http`, but only the hosts the
//! operator allowed with `--allow-http-host`.

use tokio::net::TcpListener;

use crate::harness::{TestHost, components};

/// A local HTTP server answering `GET /health` with `ok`; returns its port.
async fn health_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let app = axum::Router::new().route("/health", axum::routing::get(|| async { "ok" }));
    tokio::spawn(async move { axum::serve(listener, app).await });
    port
}

#[tokio::test(flavor = "multi_thread")]
async fn activities_reach_allowed_hosts_and_are_refused_the_rest() {
    let allowed = health_server().await;
    let other = health_server().await;
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
