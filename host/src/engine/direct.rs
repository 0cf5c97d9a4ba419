//! Direct episodes: a start, an event or an activity result applied in the
//! transaction that makes it durable, by an episode run right away on the
//! thread that brought it, instead of queuing it for a worker that reads it
//! back and commits again.
//!
//! Only when the outcome can be planned from memory: a new instance (its
//! first episode, on the row its start writes) or an instance with a warm
//! execution, and only with no runner on the instance ([`Claim`], which
//! waits for one of the direct workers: planning is short, and a queued
//! message costs more than the wait). The store applies the episode only
//! if the instance is still exactly what it was planned on, and queues the
//! message otherwise (see [`DirectEpisode`]); so a direct episode changes
//! how fast a message is applied, never whether or in which order.
//!
//! A caller claims, plans, hands the episode to the store with the message,
//! and passes the store's answer and the claim to [`settle`].

use std::sync::Arc;

use tokio::sync::OwnedSemaphorePermit;

use super::activities::Reserved;
use super::record::EpisodeRecord;
use super::warm::WarmExecution;
use super::{BackgroundWork, Shared, episode, schedule, staging};
use crate::model::{Message, QueuedMessage, now_millis};
use crate::store::{Applied, DirectEpisode, NewInstance, WorkItem};

/// Fuel a direct step may burn: far more than a typical step (well under a
/// million units), little enough that a request never waits long for one.
/// A step that needs more runs on a worker instead, with the full budget.
const DIRECT_FUEL: u64 = 50_000_000;

/// An instance and a worker, claimed for a direct episode. The worker is
/// released once the episode is planned (waiting for the commit takes no
/// worker, so commits of many direct episodes share a group); the
/// instance when the claim is dropped (also on a panic), which starts a
/// runner for it if it was notified meanwhile.
pub(super) struct Claim {
    shared: Arc<Shared>,
    id: String,
    worker: Option<OwnedSemaphorePermit>,
    /// What the planned episode leaves for [`settle`].
    leftover: Option<Leftover>,
}

impl Claim {
    /// Waits for a free worker; `None` if a runner owns the instance.
    pub(super) async fn new(shared: &Arc<Shared>, id: &str) -> Option<Claim> {
        let worker = shared.scheduler.claim(id).await?;
        Some(Claim {
            shared: Arc::clone(shared),
            id: id.to_owned(),
            worker: Some(worker),
            leftover: None,
        })
    }

    /// [`new`](Self::new) for a message to an existing instance, which goes
    /// direct only to a warm execution: `None` at once, without waiting for
    /// a worker, if the instance has none.
    pub(super) async fn for_message(shared: &Arc<Shared>, id: &str) -> Option<Claim> {
        if !shared.warm.contains(id) {
            return None;
        }
        Claim::new(shared, id).await
    }

    /// Plans the first episode of `new`, on the row its start writes for a
    /// fresh ID (generation 0). A restart under an old ID has another
    /// generation: the store then finds the row different and queues.
    pub(super) fn plan_start(&mut self, new: &NewInstance) -> Option<DirectEpisode> {
        let work = WorkItem {
            instance: new.started(0),
            history: Vec::new(),
            history_len: 0,
            messages: vec![QueuedMessage {
                seq: 0,
                message: Message::Start,
            }],
            effects_pending: false,
        };
        self.plan(None, work)
    }

    /// Plans the episode that applies `message` to the instance's warm
    /// execution, if it has one. (Without one, a direct episode would read
    /// and replay the history, which costs more than queuing: a worker's
    /// episode then applies every message that queued meanwhile at once.)
    pub(super) fn plan_message(&mut self, message: Message) -> Option<DirectEpisode> {
        let Some(warm) = self.shared.warm.take(&self.id) else {
            self.worker = None;
            return None;
        };
        let work = WorkItem {
            instance: warm.instance.clone(),
            history: Vec::new(),
            history_len: warm.history_len,
            messages: vec![QueuedMessage { seq: 0, message }],
            effects_pending: false,
        };
        self.plan(Some(warm), work)
    }

    fn plan(&mut self, warm: Option<WarmExecution>, work: WorkItem) -> Option<DirectEpisode> {
        let history_len = work.history_len;
        let span = episode::span(&work.instance);
        let _in_episode = span.enter();
        let planned = episode::plan(
            &self.shared.runtime,
            &self.shared.config.step_limits,
            warm,
            work,
            now_millis(),
            Some(DIRECT_FUEL),
        );
        self.worker = None;
        match planned {
            // Too large for the request's transaction: a worker stages it.
            Ok(Some(planned)) if staging::too_large(&planned.commit) => None,
            Ok(Some(episode::Planned {
                mut commit,
                live,
                report,
            })) => {
                let workers = Reserved::for_commit(&self.shared, &mut commit);
                self.leftover = Some(Leftover {
                    live,
                    wakes: BackgroundWork::of(&commit),
                    workers,
                    record: self.shared.record_of(&commit, Some(report)),
                });
                Some(DirectEpisode {
                    commit,
                    history_len,
                })
            }
            // Not loaded, over budget, a host failure: a worker will run it.
            Ok(None) => None,
            Err(error) => {
                tracing::debug!(instance = %self.id, "no direct episode: {error:#}");
                None
            }
        }
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        if self.shared.scheduler.release(&self.id) {
            schedule(&self.shared, &self.id);
        }
    }
}

/// What a planned direct episode needs once the store has answered.
struct Leftover {
    /// The execution, if the orchestrator waits.
    live: Option<WarmExecution>,
    /// Whether the timer service, the dispatcher must be woken.
    wakes: BackgroundWork,
    /// Workers for the activities the episode leases.
    workers: Reserved,
    /// What the episode tells the metrics and traces once committed.
    record: EpisodeRecord,
}

/// Acts on the store's answer for a message to `id`, giving up the claim.
/// For a committed direct episode: keeps its execution warm, releases the
/// instance, and only then starts the activities its commit leased (so
/// their results find the execution back and the instance free) and
/// schedules the instances it notified. For a queued message: schedules
/// `id`, unless another host runs it.
pub(super) fn settle(shared: &Arc<Shared>, id: &str, mut claim: Option<Claim>, applied: Applied) {
    let leftover = claim.as_mut().and_then(|claim| claim.leftover.take());
    match (applied, leftover) {
        (Applied::Directly(follow_up), Some(leftover)) => {
            shared.record(&leftover.record);
            if let Some(live) = leftover.live {
                shared.warm.keep(id, live);
            }
            drop(claim);
            leftover.workers.start(shared, follow_up.leased);
            shared.wake(leftover.wakes);
            for other in follow_up.notify {
                schedule(shared, &other);
            }
        }
        (Applied::Elsewhere, _) => drop(claim),
        _ => {
            drop(claim);
            schedule(shared, id);
        }
    }
}
