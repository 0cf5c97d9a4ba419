//! Work among hosts sharing one database: runs the instances other hosts
//! wake this one for (their owner is this host), and polls for work no
//! live host owns (a dead host's instances, a wake-up that was lost), so
//! nothing waits for a host to start. Only for a store with peers
//! (`Store::poll_interval`).

use std::sync::Arc;
use std::time::Duration;

use super::{BackgroundWork, Engine, stored};

/// Instances scheduled per poll, at most; more are found by the next.
const POLL_LIMIT: usize = 1_000;

pub(super) async fn run(engine: Engine, interval: Duration) {
    let (wakes, mut woken) = tokio::sync::mpsc::unbounded_channel::<String>();
    // Called on the store's own threads: hand over to this runtime.
    engine.shared.store.on_wake(Box::new(move |id| {
        let _ = wakes.send(id.to_owned());
    }));
    let mut polls = tokio::time::interval(interval);
    polls.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            Some(id) = woken.recv() => engine.notify(&id),
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
