//! Runs activities: a dispatcher leases queued activities from the store,
//! as many at once as there are free workers (one transaction), runs each
//! in the activity sandbox with a timeout, and records each result as a
//! message for its instance, exactly once. Results of activities that end
//! together share a group commit, so throughput does not hang on one fsync
//! per activity and worker.
//!
//! Delivery is at least once: if the host dies mid-run, the lease is
//! released at start-up and the activity runs again. Recording is at most
//! once: the store removes the queued activity in the same transaction
//! that records its result, and refuses a second result.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;

use super::{Engine, blocking, direct};
use crate::model::{Message, Millis, now_millis};
use crate::runtime::GuestError;
use crate::store::ActivityWork;

/// Extra lease time beyond the timeout, for recording the result.
const LEASE_MARGIN: Duration = Duration::from_secs(30);
/// How often an idle dispatcher looks for work it was not woken for (expired leases).
const IDLE_RECHECK: Duration = Duration::from_secs(1);

pub(super) async fn run_dispatcher(engine: Engine) {
    let workers = Arc::new(Semaphore::new(engine.shared.config.activity_workers.max(1)));
    let lease = (engine.shared.config.activity_timeout + LEASE_MARGIN).as_millis() as Millis;
    loop {
        // Only this loop takes permits, so every one counted free is ours.
        let first = Arc::clone(&workers)
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        let free = 1 + workers.available_permits();
        let store = Arc::clone(&engine.shared.store);
        match blocking(move || store.claim_activities(now_millis(), lease, free)).await {
            Ok(claimed) if !claimed.is_empty() => {
                let mut permits = std::iter::once(first).chain(std::iter::from_fn(|| {
                    Arc::clone(&workers).try_acquire_owned().ok()
                }));
                for work in claimed {
                    let permit = permits.next().expect("no more claimed than free");
                    let engine = engine.clone();
                    tokio::spawn(async move {
                        run_one(&engine, work).await;
                        drop(permit);
                    });
                }
                continue;
            }
            Ok(_) => drop(first),
            Err(error) => {
                drop(first);
                tracing::error!("cannot claim activities: {error:#}");
            }
        }
        tokio::select! {
            () = engine.shared.activities_changed.notified() => {}
            () = tokio::time::sleep(IDLE_RECHECK) => {}
        }
    }
}

async fn run_one(engine: &Engine, work: ActivityWork) {
    let timeout = engine.shared.config.activity_timeout;
    let runtime = Arc::clone(&engine.shared.runtime);
    let (name, input, version) = (work.name.clone(), work.input.clone(), work.version.clone());
    // Loading the version (from the store, compiling it) is not the
    // activity's time; it is rarely needed, so no hop when it is not.
    if version.as_deref().is_some_and(|v| !runtime.has_version(v)) {
        let shared = Arc::clone(&engine.shared);
        let wanted = version.clone();
        let _ = tokio::task::spawn_blocking(move || shared.ensure_version(wanted.as_deref())).await;
    }
    let run = tokio::task::spawn_blocking(move || {
        runtime.run_activity(&name, version.as_deref(), &input, timeout)
    });
    // The sandbox interrupts guest code at the timeout; this also covers
    // time spent blocked in the host on the guest's behalf.
    let result = match tokio::time::timeout(timeout + Duration::from_secs(1), run).await {
        Ok(Ok(Ok(outcome))) => outcome,
        Ok(Ok(Err(GuestError::Host(error)))) => {
            // Not the activity's fault: leave it leased; it runs again when
            // the lease expires.
            tracing::error!(activity = %work.name, instance = %work.instance_id, "cannot run the activity: {error:#}");
            return;
        }
        Ok(Ok(Err(GuestError::TimedOut))) | Err(_) => Err(format!(
            "the activity ran past its timeout of {}s",
            timeout.as_secs_f64()
        )),
        Ok(Ok(Err(error @ GuestError::UnknownActivity(_)))) => Err(error.to_string()),
        Ok(Ok(Err(error))) => Err(format!("the activity {error}")),
        Ok(Err(panic)) => Err(format!("the activity could not run: {panic}")),
    };
    // With a worker free and the instance warm, the result is applied in
    // the transaction that records it (see `direct.rs`).
    let shared = Arc::clone(&engine.shared);
    let instance_id = work.instance_id.clone();
    let mut claim = direct::Claim::try_new(&engine.shared, &instance_id);
    let recorded = blocking(move || {
        let planned = claim.as_mut().and_then(|claim| {
            claim.plan_message(Message::ActivityDone {
                generation: work.generation,
                id: work.task_id,
                result: result.clone(),
            })
        });
        let (episode, leftover) = planned.unzip();
        let applied = shared.store.complete_activity(&work, result, episode)?;
        let recorded = applied.is_some();
        if let Some(applied) = applied {
            direct::settle(&shared, &work.instance_id, leftover, applied);
        }
        drop(claim);
        Ok(recorded)
    })
    .await;
    match recorded {
        Ok(true) => {}
        Ok(false) => {
            tracing::debug!(instance = %instance_id, "activity result discarded: its generation ended")
        }
        Err(error) => {
            tracing::error!(instance = %instance_id, "cannot record an activity result; it will run again: {error:#}")
        }
    }
}
