//! One runner per instance at a time; a bounded number of runners at once.
//!
//! `notify(id)` is called after every committed message. If no runner owns
//! the instance, one is spawned; if one does, it is told to go around once
//! more, because it may have read the inbox before the new message landed.
//!
//! A request may also [`claim`](Scheduler::claim) an idle instance and a
//! direct worker (waiting for one: they are held only while planning) to
//! run a direct episode on its own thread; a notification
//! meanwhile is kept for the claim's release.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::set_aside::MAX_FAILED_PASSES;
use crate::store::StoreError;

/// The longest wait between two passes after failures: once the cause is
/// gone (space freed on a full disk), work resumes within it.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

pub(super) struct Scheduler {
    /// Instances with a runner, and whether it must run again when done.
    owned: Arc<Mutex<HashMap<String, bool>>>,
    permits: Arc<Semaphore>,
    /// Workers for direct episodes, apart from the runners': a runner
    /// holds its worker until its commit, and direct episodes must not
    /// wait behind commits (nor fall back to runners because of them).
    direct_permits: Arc<Semaphore>,
}

impl Scheduler {
    pub(super) fn new(workers: usize) -> Scheduler {
        Scheduler {
            owned: Arc::new(Mutex::new(HashMap::new())),
            permits: Arc::new(Semaphore::new(workers.max(1))),
            direct_permits: Arc::new(Semaphore::new(workers.max(1))),
        }
    }

    /// Instances with a runner, running or waiting for a worker.
    pub(super) fn backlog(&self) -> usize {
        self.owned.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Takes `id` and a worker for the caller, once a worker is free, if
    /// no runner owns `id`. Until [`release`](Self::release),
    /// notifications for `id` only mark it to run again.
    pub(super) async fn claim(&self, id: &str) -> Option<OwnedSemaphorePermit> {
        let permit = Arc::clone(&self.direct_permits)
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        let mut owned = self.owned.lock().unwrap_or_else(|e| e.into_inner());
        if owned.contains_key(id) {
            return None;
        }
        owned.insert(id.to_owned(), false);
        Some(permit)
    }

    /// Gives up a claim on `id`; true if it was notified meanwhile (a
    /// runner must then be started for it).
    pub(super) fn release(&self, id: &str) -> bool {
        let mut owned = self.owned.lock().unwrap_or_else(|e| e.into_inner());
        owned.remove(id).unwrap_or(false)
    }

    /// Makes sure a runner will process `id`'s inbox after this call.
    /// `run` performs one pass over the inbox. A pass that fails is tried
    /// again after a backoff; after [`MAX_FAILED_PASSES`] failures in a row
    /// (not counting an unavailable database, which heals by itself),
    /// `set_aside` is called with the last error instead.
    pub(super) fn notify<F, Fut, S, SFut>(&self, id: &str, run: F, set_aside: S)
    where
        F: Fn(String) -> Fut + Send + 'static,
        Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
        S: Fn(String, String) -> SFut + Send + 'static,
        SFut: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        {
            let mut owned = self.owned.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(again) = owned.get_mut(id) {
                *again = true;
                return;
            }
            owned.insert(id.to_owned(), false);
        }
        let owned = Arc::clone(&self.owned);
        let permits = Arc::clone(&self.permits);
        let id = id.to_owned();
        tokio::spawn(async move {
            let mut backoff = Duration::from_millis(100);
            let mut failures = 0;
            loop {
                let result = {
                    let _permit = permits
                        .acquire()
                        .await
                        .expect("the semaphore is never closed");
                    // Its own task, so that a panic in the episode is an
                    // error of this pass, not the end of the runner: a dead
                    // runner would keep owning the instance, stuck until a
                    // restart.
                    match tokio::spawn(run(id.clone())).await {
                        Ok(result) => result,
                        Err(panic) => Err(anyhow::anyhow!("the episode panicked: {panic}")),
                    }
                };
                if let Err(error) = result {
                    // Nothing was committed, or a lost commit will be
                    // found out by the next pass's read: the messages are
                    // still queued. A database that cannot be written now
                    // is waited out; anything else counts toward setting
                    // the instance aside (a commit lost every time too).
                    let unavailable = StoreError::of(&error).and_then(StoreError::unavailable);
                    if unavailable.is_none() {
                        failures += 1;
                    }
                    if failures < MAX_FAILED_PASSES {
                        tracing::error!(instance = %id, "episode failed, retrying in {backoff:?}: {error:#}");
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                        continue;
                    }
                    if let Err(error) = set_aside(id.clone(), format!("{error:#}")).await {
                        tracing::error!(instance = %id, "cannot set its messages aside, retrying in {backoff:?}: {error:#}");
                        tokio::time::sleep(backoff).await;
                        continue;
                    }
                    failures = 0;
                }
                let mut owned = owned.lock().unwrap_or_else(|e| e.into_inner());
                let again = owned.get_mut(&id).expect("the runner owns its entry");
                if *again {
                    *again = false;
                } else {
                    owned.remove(&id);
                    return;
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test]
    async fn a_panicking_episode_is_retried_and_the_instance_released() {
        let scheduler = Scheduler::new(1);
        let passes = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&passes);
        scheduler.notify(
            "instance",
            move |_id| {
                let pass = counted.fetch_add(1, Ordering::SeqCst);
                async move {
                    assert!(pass > 0, "the first pass panics");
                    Ok(())
                }
            },
            |_id, error| async move { panic!("set aside after one failure: {error}") },
        );
        until_released(&scheduler).await;
        assert_eq!(passes.load(Ordering::SeqCst), 2);
    }

    /// Waits until nothing owns an instance any more.
    async fn until_released(scheduler: &Scheduler) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while scheduler.backlog() > 0 {
            assert!(tokio::time::Instant::now() < deadline, "still owned");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    // Paused time: the backoff's sleeps pass at once.
    #[tokio::test(start_paused = true)]
    async fn a_pass_failing_again_and_again_is_set_aside_then_the_instance_released() {
        let scheduler = Scheduler::new(1);
        let passes = Arc::new(AtomicUsize::new(0));
        let asides = Arc::new(Mutex::new(Vec::new()));
        let (counted, kept) = (Arc::clone(&passes), Arc::clone(&asides));
        scheduler.notify(
            "poisoned",
            move |_id| {
                counted.fetch_add(1, Ordering::SeqCst);
                async { Err(anyhow::anyhow!("cannot read message 7")) }
            },
            move |id, error| {
                kept.lock().unwrap().push((id, error));
                async { Ok(()) }
            },
        );
        until_released(&scheduler).await;
        assert_eq!(passes.load(Ordering::SeqCst), MAX_FAILED_PASSES as usize);
        let asides = asides.lock().unwrap();
        assert_eq!(
            *asides,
            [("poisoned".to_owned(), "cannot read message 7".to_owned())]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_unavailable_database_is_waited_out_not_set_aside() {
        let scheduler = Scheduler::new(1);
        let passes = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&passes);
        let failing = MAX_FAILED_PASSES as usize + 2;
        scheduler.notify(
            "waiting",
            move |_id| {
                let pass = counted.fetch_add(1, Ordering::SeqCst);
                async move {
                    if pass < failing {
                        let full = crate::store::Unavailable("the disk is full".into());
                        let error = StoreError::from(anyhow::Error::new(full));
                        return Err(anyhow::Error::new(error).context("committing an episode"));
                    }
                    Ok(())
                }
            },
            |_id, error| async move { panic!("set aside: {error}") },
        );
        until_released(&scheduler).await;
        assert_eq!(passes.load(Ordering::SeqCst), failing + 1);
    }
}
