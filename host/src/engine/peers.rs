//! Work among hosts sharing one database: runs the instances other hosts
//! wake this one for (their owner is this host), and polls for work no
//! live host owns (a dead host's instances, a wake-up that was lost), so
//! nothing waits for a host to start. Only for a store with peers
//! (`Store::poll_interval`).

use std::sync::Arc;
use std::time::Duration;

use super::{BackgroundWork, Engine, stored};
use crate::store::WakeUp;

/// Instances scheduled per poll, at most; more are found by the next.
const POLL_LIMIT: usize = 1_000;

pub(super) async fn run(engine: Engine, interval: Duration) {
    let (wakes, mut woken) = tokio::sync::mpsc::unbounded_channel::<(String, Option<String>)>();
    // Called on the store's own threads: hand over to this runtime.
    engine
        .shared
        .store
        .on_wake(Box::new(move |wake: WakeUp<'_>| {
            let accepted_by = wake.accepted_by.map(str::to_owned);
            let _ = wakes.send((wake.instance.to_owned(), accepted_by));
        }));
    let mut polls = tokio::time::interval(interval);
    polls.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            Some((id, accepted_by)) = woken.recv() => {
                if let Some(host) = accepted_by {
                    engine.shared.affinity.accepted_elsewhere(&id, &host);
                }
                engine.notify(&id);
            }
            _ = polls.tick() => poll(&engine).await,
        }
    }
}

/// Schedules the instances with work that no live host owns, or that this
/// host owns.
async fn poll(engine: &Engine) {
    let store = Arc::clone(&engine.shared.store);
    match stored(move || store.unowned_work(POLL_LIMIT)).await {
        Ok(ids) => {
            for id in &ids {
                engine.notify(id);
            }
        }
        Err(error) => tracing::warn!("cannot look for work other hosts left: {error:#}"),
    }
    // Timers and activities other hosts set, or left behind.
    engine.shared.wake(BackgroundWork::ANY);
}
