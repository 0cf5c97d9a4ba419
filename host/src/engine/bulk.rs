//! Bulk actions: terminate, purge or rewind everything a filter selects
//! (the dashboard's bulk buttons). A background task walks the selection a
//! page at a time and acts on each instance through the same operations a
//! single request uses, so each is checked as that request would be; a
//! page's instances are acted on together (their writes share group
//! commits) and the task yields between pages, so a huge selection never
//! holds up the host. Progress lives in memory on the host that runs the
//! job, for the caller to poll; what was done is durable instance by
//! instance, and a job cut short by a restart is simply started again.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use super::{Engine, InstanceFilter, PageCursor, RewindOutcome};
use crate::model::{InstanceId, RuntimeStatus};
use crate::store::{DeliveryOutcome, PageOrder};

/// Instances read per page, between two yields.
const PAGE: usize = 100;
/// Instances of a page acted on at once: enough for their writes to share
/// group commits, few enough to leave connections for everything else.
const AT_ONCE: usize = 16;
/// Jobs kept for their callers to read (finished ones make room).
const KEPT_JOBS: usize = 32;
/// Jobs running at once on a host; more are refused until one finishes.
pub const MAX_RUNNING_JOBS: usize = 4;
/// Failures a job's progress lists (it counts them all).
const LISTED_ERRORS: usize = 20;

/// What a bulk job does to each instance it selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BulkAction {
    /// Live instances; others are skipped.
    Terminate,
    /// Finished instances (with their histories).
    Purge,
    /// Failed instances; others are skipped.
    Rewind,
}

impl BulkAction {
    pub fn parse(name: &str) -> Option<BulkAction> {
        [BulkAction::Terminate, BulkAction::Purge, BulkAction::Rewind]
            .into_iter()
            .find(|action| action.as_str().eq_ignore_ascii_case(name))
    }

    pub fn as_str(self) -> &'static str {
        match self {
            BulkAction::Terminate => "terminate",
            BulkAction::Purge => "purge",
            BulkAction::Rewind => "rewind",
        }
    }

    /// `filter` narrowed to the statuses the action applies to, walked in
    /// creation order; `None` if it can select none of them.
    fn narrow(self, mut filter: InstanceFilter) -> Option<InstanceFilter> {
        let applicable = self.statuses();
        if filter.statuses.is_empty() {
            filter.statuses = applicable;
        } else {
            filter.statuses.retain(|status| applicable.contains(status));
        }
        filter.order = PageOrder::OldestFirst;
        (!filter.statuses.is_empty()).then_some(filter)
    }

    /// The statuses it acts on.
    fn statuses(self) -> Vec<RuntimeStatus> {
        RuntimeStatus::ALL
            .into_iter()
            .filter(|status| match self {
                BulkAction::Terminate => !status.is_terminal(),
                BulkAction::Purge => status.is_terminal(),
                BulkAction::Rewind => *status == RuntimeStatus::Failed,
            })
            .collect()
    }
}

/// Where a bulk job stands.
#[derive(Debug, Clone)]
pub struct BulkProgress {
    pub id: String,
    pub action: BulkAction,
    pub done: bool,
    /// Instances looked at so far.
    pub processed: u64,
    pub succeeded: u64,
    /// Selected but not in a state the action applies to (any more).
    pub skipped: u64,
    pub failed: u64,
    /// The first failures: instance ID and why.
    pub errors: Vec<(String, String)>,
    /// Why the walk through the selection stopped before its end (the
    /// store could not be read), if it did.
    pub stopped: Option<String>,
}

impl BulkProgress {
    /// `deleted` instances purged together.
    fn purged(&mut self, deleted: usize) {
        self.processed += deleted as u64;
        self.succeeded += deleted as u64;
    }

    /// A job with nothing done yet.
    fn new(id: String, action: BulkAction) -> BulkProgress {
        BulkProgress {
            id,
            action,
            done: false,
            processed: 0,
            succeeded: 0,
            skipped: 0,
            failed: 0,
            errors: Vec::new(),
            stopped: None,
        }
    }

    fn record(&mut self, id: String, outcome: anyhow::Result<Acted>) {
        self.processed += 1;
        match outcome {
            Ok(Acted::Done) => self.succeeded += 1,
            Ok(Acted::Skipped) => self.skipped += 1,
            Err(error) => {
                self.failed += 1;
                if self.errors.len() < LISTED_ERRORS {
                    self.errors.push((id, format!("{error:#}")));
                }
            }
        }
    }
}

/// What acting on one instance came to.
enum Acted {
    Done,
    Skipped,
}

/// The jobs of this host, newest last.
#[derive(Default)]
pub(super) struct BulkJobs {
    jobs: Mutex<VecDeque<Arc<Mutex<BulkProgress>>>>,
}

impl BulkJobs {
    /// Keeps `progress` as a new running job, unless too many run.
    fn add(&self, progress: BulkProgress) -> Option<Arc<Mutex<BulkProgress>>> {
        let job = Arc::new(Mutex::new(progress));
        let mut jobs = self.jobs.lock().unwrap();
        let running = jobs.iter().filter(|job| !job.lock().unwrap().done).count();
        if running >= MAX_RUNNING_JOBS {
            return None;
        }
        // Finished jobs make room; running ones are never dropped.
        while jobs.len() >= KEPT_JOBS {
            let Some(at) = jobs.iter().position(|job| job.lock().unwrap().done) else {
                break;
            };
            jobs.remove(at);
        }
        jobs.push_back(Arc::clone(&job));
        Some(job)
    }

    fn get(&self, id: &str) -> Option<BulkProgress> {
        let jobs = self.jobs.lock().unwrap();
        jobs.iter()
            .map(|job| job.lock().unwrap())
            .find(|job| job.id == id)
            .map(|job| job.clone())
    }
}

impl Engine {
    /// Starts `action` on every instance `filter` selects (narrowed to the
    /// statuses the action applies to; `None` selects none), in the
    /// background; returns its progress so far (nothing done yet), or
    /// `None` if [`MAX_RUNNING_JOBS`] run already.
    pub fn start_bulk(
        &self,
        action: BulkAction,
        filter: Option<InstanceFilter>,
        reason: String,
    ) -> Option<BulkProgress> {
        let filter = filter.and_then(|filter| action.narrow(filter));
        let progress = BulkProgress::new(InstanceId::generate().as_str().to_owned(), action);
        let job = self.shared.bulk.add(progress.clone())?;
        let engine = self.clone();
        tokio::spawn(async move {
            let walked = match filter {
                Some(filter) => engine.run_bulk(action, filter, &reason, &job).await,
                None => Ok(()),
            };
            let mut job = job.lock().unwrap();
            if let Err(error) = walked {
                tracing::warn!(
                    error = format!("{error:#}"),
                    "a bulk {} stopped",
                    action.as_str()
                );
                job.stopped = Some(format!("{error:#}"));
            }
            job.done = true;
            tracing::info!(
                action = action.as_str(),
                succeeded = job.succeeded,
                skipped = job.skipped,
                failed = job.failed,
                "bulk action done"
            );
        });
        Some(progress)
    }

    /// A bulk job's progress, if this host runs or ran it recently.
    pub fn bulk_progress(&self, id: &str) -> Option<BulkProgress> {
        self.shared.bulk.get(id)
    }

    async fn run_bulk(
        &self,
        action: BulkAction,
        filter: InstanceFilter,
        reason: &str,
        job: &Mutex<BulkProgress>,
    ) -> anyhow::Result<()> {
        if action == BulkAction::Purge {
            // Finished instances are deleted a batch per transaction.
            let purged = |deleted| job.lock().unwrap().purged(deleted);
            return self.purge_matching(filter, purged).await.map(drop);
        }
        let mut after: Option<PageCursor> = None;
        loop {
            let (page, next) = self.query(filter.clone(), after, PAGE).await?;
            for chunk in page.chunks(AT_ONCE) {
                let mut acting = tokio::task::JoinSet::new();
                let mut acted_on = HashMap::new();
                for instance in chunk {
                    let (engine, id, reason) =
                        (self.clone(), instance.id.clone(), reason.to_owned());
                    let task = acting.spawn(async move { engine.act(action, &id, reason).await });
                    acted_on.insert(task.id(), instance.id.clone());
                }
                // Each outcome is recorded against its instance, a panic too.
                while let Some(joined) = acting.join_next_with_id().await {
                    let (task, outcome) = match joined {
                        Ok((task, outcome)) => (task, outcome),
                        Err(error) => (error.id(), Err(anyhow::anyhow!("it panicked: {error}"))),
                    };
                    let id = acted_on.remove(&task).unwrap_or_default();
                    job.lock().unwrap().record(id, outcome);
                }
            }
            match next {
                Some(next) => after = Some(next),
                None => return Ok(()),
            }
            tokio::task::yield_now().await;
        }
    }

    async fn act(&self, action: BulkAction, id: &str, reason: String) -> anyhow::Result<Acted> {
        let id = InstanceId::parse(id).map_err(anyhow::Error::msg)?;
        Ok(match action {
            BulkAction::Terminate => match self.terminate(&id, reason).await? {
                DeliveryOutcome::Accepted => Acted::Done,
                _ => Acted::Skipped,
            },
            BulkAction::Rewind => match self.rewind(&id, reason).await? {
                RewindOutcome::Rewound => Acted::Done,
                _ => Acted::Skipped,
            },
            // `run_bulk` purges a batch at a time, never one by one.
            BulkAction::Purge => anyhow::bail!("purges are not done one by one"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn progress(id: &str) -> BulkProgress {
        BulkProgress::new(id.into(), BulkAction::Purge)
    }

    /// At most [`MAX_RUNNING_JOBS`] run; finished ones make room, and are
    /// kept (the newest [`KEPT_JOBS`]) for their callers to read.
    #[test]
    fn running_jobs_are_bounded_and_finished_ones_make_room() {
        let jobs = BulkJobs::default();
        let running: Vec<_> = (0..MAX_RUNNING_JOBS)
            .map(|n| jobs.add(progress(&format!("running-{n}"))).unwrap())
            .collect();
        assert!(jobs.add(progress("one-too-many")).is_none());
        running[0].lock().unwrap().done = true;
        assert!(jobs.add(progress("next")).is_some());
        assert!(jobs.get("running-0").unwrap().done);

        for job in jobs.jobs.lock().unwrap().iter() {
            job.lock().unwrap().done = true;
        }
        for n in 0..2 * KEPT_JOBS {
            let job = jobs.add(progress(&format!("later-{n}"))).unwrap();
            job.lock().unwrap().done = true;
        }
        assert_eq!(jobs.jobs.lock().unwrap().len(), KEPT_JOBS);
        assert!(jobs.get("running-0").is_none());
        assert!(jobs.get(&format!("later-{}", 2 * KEPT_JOBS - 1)).is_some());
    }

    #[test]
    fn actions_parse_in_any_case_and_apply_to_their_statuses() {
        assert_eq!(BulkAction::parse("Purge"), Some(BulkAction::Purge));
        assert_eq!(BulkAction::parse("nuke"), None);
        assert_eq!(BulkAction::Rewind.statuses(), [RuntimeStatus::Failed]);
        assert!(
            BulkAction::Terminate
                .statuses()
                .iter()
                .all(|status| !status.is_terminal())
        );
    }
}
