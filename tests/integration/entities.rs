//! Durable entities end to end: the entity routes, orchestrators that
//! signal, call and lock entities (the `counter-entity` and
//! `bank-transfer` samples), and exactly-once operations across host
//! kills.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::{TestHost, components};

async fn host() -> TestHost {
    TestHost::prepare(&[&components().counter_entity, &components().bank_transfer])
        .started()
        .await
}

/// Waits until entity `path` (`Name/key`) has `expected` as its state.
async fn wait_for_state(host: &TestHost, path: &str, expected: Value) {
    host.wait_until(
        &format!("entity {path} to hold {expected}"),
        Duration::from_secs(60),
        async || {
            let reply = host.get(&format!("/entities/{path}")).await;
            match reply.status == StatusCode::OK && reply.body == expected {
                true => Ok(()),
                false => Err(format!("{} {}", reply.status, reply.body)),
            }
        },
    )
    .await;
}

async fn signal(host: &TestHost, path: &str, operation: &str, input: &str) {
    let reply = host
        .post(&format!("/entities/{path}?op={operation}"), input)
        .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{reply:?}");
    assert_eq!(reply.body, Value::Null, "a 202 has no body");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_signalled_counter_keeps_its_state_which_reads_and_listings_show() {
    let host = host().await;
    let missing = host.get("/entities/Counter/visits").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND, "{missing:?}");

    signal(&host, "Counter/visits", "add", "5").await;
    signal(&host, "counter/visits", "incr", "").await;
    wait_for_state(&host, "COUNTER/visits", json!(6)).await;
    // Keys are exact: another key is another counter.
    let other = host.get("/entities/Counter/Visits").await;
    assert_eq!(other.status, StatusCode::NOT_FOUND);

    let unknown = host.post("/entities/Nope/x?op=add", "1").await;
    assert_eq!(unknown.status, StatusCode::BAD_REQUEST, "{unknown:?}");
    assert!(
        unknown.message().contains("no entity named 'nope'"),
        "{unknown:?}"
    );
    let bad_json = host.post("/entities/Counter/x?op=add", "{").await;
    assert_eq!(bad_json.status, StatusCode::BAD_REQUEST);

    signal(&host, "Counter/cats", "add", "2").await;
    wait_for_state(&host, "Counter/cats", json!(2)).await;
    let listed = host.get("/entities?fetchState=true").await;
    assert_eq!(listed.status, StatusCode::OK);
    let mut entities: Vec<(Value, Value)> = listed
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|entity| (entity["entityId"].clone(), entity["state"].clone()))
        .collect();
    entities.sort_by_key(|(id, _)| id.to_string());
    assert_eq!(
        entities,
        [
            (json!({"name": "counter", "key": "cats"}), json!(2)),
            (json!({"name": "counter", "key": "visits"}), json!(6)),
        ]
    );
    let named = host.get("/entities/Counter?top=1").await;
    assert_eq!(named.body.as_array().unwrap().len(), 1, "{named:?}");
    assert_eq!(
        named.body[0]["state"],
        Value::Null,
        "no state unless fetched"
    );
    assert!(named.header("x-ms-continuation-token").is_some());

    // Entities are not orchestration instances.
    let instances = host.get("/instances").await;
    assert_eq!(instances.body, json!([]), "{instances:?}");
    let as_instance = host.get("/instances/@counter@visits").await;
    assert_eq!(as_instance.status, StatusCode::NOT_FOUND);
    let start = host.post("/orchestrators/AddAndGet/@counter@x", "{}").await;
    assert_eq!(start.status, StatusCode::BAD_REQUEST, "{start:?}");

    // DELETE signals `delete`, which this entity handles by deleting its state.
    let deleted = host.delete("/entities/Counter/visits").await;
    assert_eq!(deleted.status, StatusCode::ACCEPTED);
    host.wait_until("the counter to go", Duration::from_secs(60), async || {
        let reply = host.get("/entities/Counter/visits").await;
        match reply.status {
            StatusCode::NOT_FOUND => Ok(()),
            status => Err(format!("{status} {}", reply.body)),
        }
    })
    .await;
    // Nothing is kept of an entity with no state: not even its row.
    let rows = host.database_rows("SELECT instance_id FROM instances WHERE instance_id LIKE '@%'");
    assert_eq!(rows, ["@counter@cats"]);
    let listed = host.get("/entities").await;
    assert_eq!(listed.body.as_array().unwrap().len(), 1, "{listed:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_orchestrator_signals_and_calls_an_entity_in_order() {
    let host = host().await;
    let first = host
        .start_instance("AddAndGet", None, r#"{"key": "k", "amount": 3}"#)
        .await;
    let done = host.wait_for_status(&first, "Completed").await;
    assert_eq!(done["output"], 3, "the call sees the signal sent before it");
    let second = host
        .start_instance("AddAndGet", None, r#"{"key": "k", "amount": 4}"#)
        .await;
    let done = host.wait_for_status(&second, "Completed").await;
    assert_eq!(done["output"], 7);
    let types = host.event_types(&second).await;
    for expected in ["EntitySignaled", "EntityCalled", "EntityCallCompleted"] {
        assert!(types.iter().any(|kind| kind == expected), "{types:?}");
    }
    wait_for_state(&host, "Counter/k", json!(7)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn transfers_under_locks_neither_lose_nor_make_money() {
    let host = host().await;
    signal(&host, "Account/alice", "deposit", "1000").await;
    signal(&host, "Account/bob", "deposit", "1000").await;
    wait_for_state(&host, "Account/alice", json!(1000)).await;
    wait_for_state(&host, "Account/bob", json!(1000)).await;
    // Both directions at once: locks taken in one order cannot deadlock.
    let mut transfers = Vec::new();
    for n in 0..12 {
        let (from, to) = if n % 2 == 0 {
            ("alice", "bob")
        } else {
            ("bob", "alice")
        };
        let input = json!({"from": from, "to": to, "amount": 10 + n}).to_string();
        transfers.push(host.start_instance("Transfer", None, &input).await);
        // A client's deposit waits while an account is locked, and then applies.
        signal(&host, &format!("Account/{from}"), "deposit", "1").await;
    }
    for id in &transfers {
        let done = host.wait_for_status(id, "Completed").await;
        assert_eq!(done["output"]["transferred"], true, "{done}");
    }
    let alice = (0..12).filter(|n| n % 2 == 1).map(|n| 10 + n).sum::<i64>()
        - (0..12).filter(|n| n % 2 == 0).map(|n| 10 + n).sum::<i64>();
    wait_for_state(&host, "Account/alice", json!(1000 + 6 + alice)).await;
    wait_for_state(&host, "Account/bob", json!(1000 + 6 - alice)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn operations_apply_exactly_once_across_host_kills() {
    let mut host = host().await;
    let mut sent = 0;
    let mut callers = Vec::new();
    for round in 0..3 {
        for _ in 0..40 {
            signal(&host, "Counter/total", "add", "1").await;
            sent += 1;
        }
        for _ in 0..5 {
            let input = json!({"key": "total", "amount": 2}).to_string();
            callers.push(host.start_instance("AddAndGet", None, &input).await);
            sent += 2;
        }
        // Killed while the entity and the callers may be mid-episode.
        host.restart().await;
        if round == 2 {
            break;
        }
    }
    for id in &callers {
        host.wait_for_status(id, "Completed").await;
    }
    wait_for_state(&host, "Counter/total", json!(sent)).await;
    // Nothing applies twice: the count stays put once everything landed.
    let queued = host.database_rows("SELECT count(*) FROM inbox");
    assert_eq!(queued, ["0"], "everything was consumed");
    let reply = host.get("/entities/Counter/total").await;
    assert_eq!(reply.body, json!(sent));
}
