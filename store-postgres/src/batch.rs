//! Group commit: writes to different instances share one transaction.
//!
//! A write of its own costs PostgreSQL a transaction (`BEGIN`, `COMMIT`,
//! a WAL flush) and the host and the server a round trip per statement.
//! So the hot writes (starts, deliveries, episode commits, activity
//! results) queue here, and a batcher applies what is queued, up to
//! [`MAX_BATCH`] writes (one per instance, but for events queued), in one
//! transaction, their
//! statements pipelined on one connection. Up to [`BATCHES`] batches run
//! at once. Nothing waits for a batch to fill: a lone write goes at once,
//! and batches grow only while others are running.
//!
//! A batch is as good as a transaction per write because:
//! - a write that decides against writing (stale, conflict, not found)
//!   has written nothing when it says so: the others are not affected;
//! - a batch holds at most one write per instance (the one whose row the
//!   write locks) that may change its row, since row locks, which order
//!   writes to an instance across transactions (`episode.rs`), cannot
//!   order two writes in one; writes that only read the row (events
//!   queued) may share a batch, which keeps their order;
//! - writes are sorted by instance ID and take their row lock in their
//!   first statement, which the pipeline sends in that order: batches lock
//!   rows in one order and do not deadlock one another (a deadlock that
//!   still happens is retried, as any);
//! - when a write fails, the batch is rolled back and each write runs
//!   again in a transaction of its own, so an error stays its write's own.
//!   Only a `COMMIT` whose outcome is unknown fails the whole batch.
//!
//! One instance must not hold up the others: a batch gives up waiting for
//! a row lock (held by another host's transaction, say) after
//! [`LOCK_TIMEOUT`], and its writes run alone, all at once, on the
//! store's other connections, where they wait as long as any write does.

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use deadpool_postgres::{Pool, Transaction};
use reprise_core::store::{CommitObserver, OutcomeUnknown, StoreResult};
use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::episode::first_cause;
use crate::hosts::{self, Membership};
use crate::rows;
use crate::{commit_failed, marked, try_again};

/// Writes in one transaction, at most.
const MAX_BATCH: usize = 32;
/// Batches (transactions, connections) running at once, at most.
pub(crate) const BATCHES: usize = 2;
/// How long a batch waits for a row lock before its writes run alone.
pub(crate) const LOCK_TIMEOUT: Duration = Duration::from_millis(200);

/// The connections writes run on.
pub(crate) struct Pools {
    /// [`BATCHES`] connections that give up on a row lock after
    /// [`LOCK_TIMEOUT`].
    pub(crate) batches: Pool,
    /// The store's others, for writes that run alone.
    pub(crate) alone: Pool,
    /// Told of each transaction the writes commit, once one is set.
    pub(crate) observer: Observer,
}

/// Where the batches find their [`CommitObserver`], set after they started.
pub(crate) type Observer = Arc<OnceLock<Arc<dyn CommitObserver>>>;

/// Tells `observer`, if one is set, of a transaction of `writes` writes.
fn observe(observer: &Observer, writes: usize, began: Instant) {
    if let Some(observer) = observer.get() {
        observer.committed(writes, began.elapsed());
    }
}

/// A write that can share a transaction with writes to other instances.
pub(crate) trait Write: Send + Sync + 'static {
    type Output: Send + 'static;

    /// What kind of write it is, for logs and tests.
    const KIND: &'static str;

    /// The instance whose row the write locks first.
    fn instance(&self) -> &str;

    /// How the write locks that row.
    fn access(&self) -> Access {
        Access::Exclusive
    }

    /// Applies the write in `transaction` for host `me`. Must write
    /// nothing when it returns an outcome that says nothing was written.
    fn apply<'a>(
        &'a self,
        transaction: &'a Transaction<'_>,
        me: &'a str,
    ) -> impl Future<Output = anyhow::Result<Self::Output>> + Send + 'a;

    /// The live host that runs the write's instance, if another, to be
    /// told once `output` is committed.
    fn owner_to_tell(_output: &Self::Output) -> Option<&str> {
        None
    }
}

/// How a write locks its instance's row, which decides what may share
/// its batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    /// Reads it and writes only elsewhere (an event queued): writes that
    /// share the row may share a batch, in their order.
    Shared,
    /// May change it: alone in its batch for that instance.
    Exclusive,
    /// Decides on other instances too (starts or terminates children,
    /// whose rows the batch's other writes may lock): in a batch of its
    /// own.
    Alone,
}

/// Queues writes for the batchers, and waits for their outcomes.
pub(crate) struct Batcher {
    queue: mpsc::UnboundedSender<Box<dyn Queued>>,
}

impl Batcher {
    /// Starts batching on `runtime`, with connections of `pools`.
    pub(crate) fn start(
        runtime: &tokio::runtime::Runtime,
        pools: Pools,
        membership: Arc<Membership>,
    ) -> Batcher {
        let (queue, queued) = mpsc::unbounded_channel();
        runtime.spawn(dispatch(queued, Arc::new(pools), membership));
        Batcher { queue }
    }

    /// Applies `write` (in a batch, or alone) and returns its outcome.
    /// Blocks: call it from a thread that may block, never from async code.
    pub(crate) fn apply<W: Write>(&self, write: W) -> StoreResult<W::Output> {
        let (reply, outcome) = oneshot::channel();
        let began = std::time::Instant::now();
        let instance = write.instance().to_owned();
        let pending = Pending {
            write,
            output: None,
            reply,
        };
        self.queue
            .send(Box::new(pending))
            .map_err(|_| anyhow::anyhow!("the PostgreSQL store has shut down"))?;
        let outcome = outcome
            .blocking_recv()
            .map_err(|_| {
                anyhow::anyhow!(
                    "the PostgreSQL store dropped a write before its commit (it shut down, or its batch failed unexpectedly)"
                )
            })?;
        if began.elapsed() > Duration::from_secs(2) {
            tracing::debug!(%instance, "a write took {:?}", began.elapsed());
        }
        Ok(outcome?)
    }
}

/// Forms batches from the queue and runs them, up to [`BATCHES`] at once.
async fn dispatch(
    mut queued: mpsc::UnboundedReceiver<Box<dyn Queued>>,
    pools: Arc<Pools>,
    membership: Arc<Membership>,
) {
    let running = Arc::new(Semaphore::new(BATCHES));
    // Queued writes not yet in a batch, oldest first.
    let mut waiting = VecDeque::new();
    loop {
        let Ok(permit) = Arc::clone(&running).acquire_owned().await else {
            return;
        };
        if waiting.is_empty() {
            match queued.recv().await {
                Some(write) => waiting.push_back(write),
                None => return,
            }
        }
        while let Ok(write) = queued.try_recv() {
            waiting.push_back(write);
        }
        let batch = next_batch(&mut waiting);
        let (pools, me) = (Arc::clone(&pools), membership.id());
        tokio::spawn(async move {
            if let Some(failed) = run(batch, &pools, &me).await {
                // Alone, each at once, without the permit: one that waits
                // for a row lock holds up neither the others nor batches.
                for write in failed {
                    let (pools, me) = (Arc::clone(&pools), me.clone());
                    tokio::spawn(async move { alone(write, &pools, &me).await });
                }
            }
            drop(permit);
        });
    }
}

/// Takes from `waiting`, oldest first, up to [`MAX_BATCH`] writes, of
/// which only [`Access::Shared`] ones may share an instance, and an
/// [`Access::Alone`] one only an empty batch, which it ends; a write that
/// does not fit waits for a later batch, in its place, and so do the later
/// writes to its instance (an instance's writes keep their order).
fn next_batch(waiting: &mut VecDeque<Box<dyn Queued>>) -> Vec<Box<dyn Queued>> {
    let mut batch: Vec<Box<dyn Queued>> = Vec::new();
    let mut taken = HashMap::new();
    let mut deferred = HashSet::new();
    let mut left = VecDeque::new();
    while let Some(write) = waiting.pop_front() {
        let access = write.access();
        let fits = !deferred.contains(write.instance())
            && match taken.get(write.instance()) {
                None => access != Access::Alone || batch.is_empty(),
                Some(taken) => *taken == Access::Shared && access == Access::Shared,
            };
        if batch.len() < MAX_BATCH && fits {
            taken.insert(write.instance().to_owned(), access);
            batch.push(write);
            if access == Access::Alone {
                break;
            }
        } else {
            deferred.insert(write.instance().to_owned());
            left.push_back(write);
        }
        if batch.len() == MAX_BATCH {
            break;
        }
    }
    left.append(waiting);
    *waiting = left;
    batch
}

/// Runs `batch` in one transaction and answers its writes; returns them,
/// unanswered, if it failed and each must run alone (but for an unknown
/// outcome: then each is told).
async fn run(
    mut batch: Vec<Box<dyn Queued>>,
    pools: &Pools,
    me: &str,
) -> Option<Vec<Box<dyn Queued>>> {
    batch.sort_by(|a, b| a.instance().cmp(b.instance()));
    let began = Instant::now();
    let outcome = together(&mut batch, &pools.batches, me).await;
    match outcome.and_then(|()| injected_lost_commit(&batch)) {
        Ok(()) => {
            observe(&pools.observer, batch.len(), began);
            let owners: Vec<_> = batch
                .iter()
                .filter_map(|write| write.owner_to_tell())
                .collect();
            for write in batch {
                write.reply(Ok(()));
            }
            // Not on the batches' connections: their short lock timeout
            // would fail a NOTIFY waiting for its turn to commit.
            tell_owners(&pools.alone, me, owners).await;
            None
        }
        Err(error) => match error.downcast_ref::<OutcomeUnknown>() {
            Some(lost) => {
                for write in batch {
                    write.reply(Err(OutcomeUnknown(lost.0.clone()).into()));
                }
                None
            }
            None => {
                tracing::debug!(
                    "a batch of {} writes was rolled back; each runs alone: {error:#}",
                    batch.len()
                );
                Some(batch)
            }
        },
    }
}

/// Tests only (debug builds): `REPRISE_TEST_LOSE_COMMIT_OF=PREFIX` (or
/// `KIND:PREFIX`, a [`Write::KIND`]) answers the first batch that made
/// such a write to an instance whose ID starts with `PREFIX` (once per
/// ID), once it has committed, as though its connection had been lost
/// during `COMMIT`: an unknown outcome, on demand.
#[cfg(debug_assertions)]
fn injected_lost_commit(batch: &[Box<dyn Queued>]) -> anyhow::Result<()> {
    static TARGET: OnceLock<Option<(Option<String>, String)>> = OnceLock::new();
    static LOST: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    let target = TARGET.get_or_init(|| {
        let wanted = std::env::var("REPRISE_TEST_LOSE_COMMIT_OF").ok()?;
        Some(match wanted.split_once(':') {
            Some((kind, prefix)) => (Some(kind.to_owned()), prefix.to_owned()),
            None => (None, wanted),
        })
    });
    let Some((kind, prefix)) = target else {
        return Ok(());
    };
    let mut lost = LOST.lock().expect("not poisoned");
    let fresh = batch
        .iter()
        .filter(|write| kind.as_deref().is_none_or(|kind| kind == write.kind()))
        .map(|write| write.instance())
        .find(|id| id.starts_with(prefix.as_str()) && !lost.iter().any(|seen| seen == id));
    if let Some(id) = fresh {
        lost.push(id.to_owned());
        let cause = "injected by REPRISE_TEST_LOSE_COMMIT_OF after the commit";
        return Err(OutcomeUnknown(cause.into()).into());
    }
    Ok(())
}

#[cfg(not(debug_assertions))]
fn injected_lost_commit(_batch: &[Box<dyn Queued>]) -> anyhow::Result<()> {
    Ok(())
}

/// Applies `write` in a transaction of its own, tried again as
/// [`transact`](crate::transact) does, and answers it.
async fn alone(mut write: Box<dyn Queued>, pools: &Pools, me: &str) {
    let pool = &pools.alone;
    let began = Instant::now();
    let mut attempts = 0;
    let outcome = loop {
        let attempt = Instant::now();
        match together(std::slice::from_mut(&mut write), pool, me).await {
            Err(error) if try_again(&mut attempts, &error) => {}
            outcome => {
                if outcome.is_ok() {
                    observe(&pools.observer, 1, attempt);
                }
                break outcome.map_err(marked);
            }
        }
    };
    if began.elapsed() > Duration::from_secs(1) {
        tracing::debug!(
            instance = write.instance(),
            kind = write.kind(),
            "a write alone took {:?} ({attempts} retries): {outcome:?}",
            began.elapsed()
        );
    }
    let owner = outcome.as_ref().ok().and_then(|()| write.owner_to_tell());
    write.reply(outcome);
    tell_owners(pool, me, owner.into_iter().collect()).await;
}

/// Tells each host of `owners` (host, instance) that its instance has new
/// messages, which `me` accepted, in one statement of its own after the
/// commit. Only a hint: a host that misses it finds the work at its next
/// poll.
async fn tell_owners(pool: &Pool, me: &str, owners: Vec<(String, String)>) {
    if owners.is_empty() {
        return;
    }
    let (channels, payloads): (Vec<String>, Vec<String>) = owners
        .into_iter()
        .map(|(owner, id)| (hosts::channel(&owner), hosts::accepted_payload(me, &id)))
        .unzip();
    let told = async {
        let client = pool.get().await?;
        rows::execute(
            &client,
            "SELECT pg_notify(c, i) FROM unnest($1::text[], $2::text[]) AS w(c, i)",
            &[&channels, &payloads],
        )
        .await
    }
    .await;
    if let Err(error) = told {
        tracing::debug!("cannot tell hosts of their new messages (their polls will): {error:#}");
    }
}

/// Applies every write of `batch` in one transaction and commits it; if
/// one fails, rolls back and returns the error that caused it.
async fn together(batch: &mut [Box<dyn Queued>], pool: &Pool, me: &str) -> anyhow::Result<()> {
    let mut client = pool.get().await?;
    let transaction = client.transaction().await?;
    let applied =
        futures::future::join_all(batch.iter_mut().map(|write| write.apply(&transaction, me)))
            .await;
    if applied.iter().any(Result::is_err) {
        return Err(first_cause(applied.into_iter().filter_map(Result::err)));
    }
    transaction.commit().await.map_err(commit_failed)
}

type Applying<'a> = Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send + 'a>>;

/// A queued [`Write`], its type erased.
trait Queued: Send {
    fn instance(&self) -> &str;
    fn kind(&self) -> &'static str;
    fn access(&self) -> Access;
    /// After a commit: the host to tell and the instance, if any (see
    /// [`Write::owner_to_tell`]).
    fn owner_to_tell(&self) -> Option<(String, String)>;
    /// Applies the write, keeping its output for [`Queued::reply`].
    fn apply<'a>(&'a mut self, transaction: &'a Transaction<'_>, me: &'a str) -> Applying<'a>;
    /// Sends the write's output, or `failed`, to whoever queued it.
    fn reply(self: Box<Self>, failed: anyhow::Result<()>);
}

struct Pending<W: Write> {
    write: W,
    output: Option<W::Output>,
    reply: oneshot::Sender<anyhow::Result<W::Output>>,
}

impl<W: Write> Queued for Pending<W> {
    fn instance(&self) -> &str {
        self.write.instance()
    }

    fn kind(&self) -> &'static str {
        W::KIND
    }

    fn access(&self) -> Access {
        self.write.access()
    }

    fn owner_to_tell(&self) -> Option<(String, String)> {
        let owner = W::owner_to_tell(self.output.as_ref()?)?;
        Some((owner.to_owned(), self.instance().to_owned()))
    }

    fn apply<'a>(&'a mut self, transaction: &'a Transaction<'_>, me: &'a str) -> Applying<'a> {
        Box::pin(async move {
            self.output = Some(self.write.apply(transaction, me).await?);
            Ok(())
        })
    }

    fn reply(self: Box<Self>, outcome: anyhow::Result<()>) {
        let Pending { output, reply, .. } = *self;
        let outcome = outcome
            .and_then(|()| output.ok_or_else(|| anyhow::anyhow!("a batched write has no outcome")));
        // Its caller may have gone; the write stands anyway.
        let _ = reply.send(outcome);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A queued write that is only looked at, never applied.
    struct Seen(&'static str, Access);

    impl Queued for Seen {
        fn instance(&self) -> &str {
            self.0
        }
        fn kind(&self) -> &'static str {
            "seen"
        }
        fn access(&self) -> Access {
            self.1
        }
        fn owner_to_tell(&self) -> Option<(String, String)> {
            None
        }
        fn apply<'a>(&'a mut self, _: &'a Transaction<'_>, _: &'a str) -> Applying<'a> {
            unreachable!("only batched")
        }
        fn reply(self: Box<Self>, _: anyhow::Result<()>) {}
    }

    fn queue(writes: Vec<Seen>) -> VecDeque<Box<dyn Queued>> {
        writes
            .into_iter()
            .map(|write| Box::new(write) as Box<dyn Queued>)
            .collect()
    }

    fn ids(writes: &[Box<dyn Queued>]) -> Vec<(&str, Access)> {
        writes
            .iter()
            .map(|write| (write.instance(), write.access()))
            .collect()
    }

    #[test]
    fn events_for_one_instance_share_a_batch_but_a_change_of_it_waits_its_turn() {
        use Access::{Exclusive, Shared};
        let mut waiting = queue(vec![
            Seen("a", Shared),
            Seen("b", Exclusive),
            Seen("a", Shared),
            Seen("a", Exclusive),
            Seen("b", Shared),
            Seen("a", Shared),
        ]);
        let batch = next_batch(&mut waiting);
        assert_eq!(
            ids(&batch),
            [("a", Shared), ("b", Exclusive), ("a", Shared)]
        );
        let left = [("a", Exclusive), ("b", Shared), ("a", Shared)];
        assert_eq!(ids(waiting.make_contiguous()), left);
        let batch = next_batch(&mut waiting);
        assert_eq!(ids(&batch), [("a", Exclusive), ("b", Shared)]);
        let batch = next_batch(&mut waiting);
        assert_eq!(ids(&batch), [("a", Shared)]);
        assert!(waiting.is_empty());
    }

    #[test]
    fn a_write_that_decides_on_other_instances_has_a_batch_to_itself() {
        use Access::{Alone, Exclusive};
        let mut waiting = queue(vec![
            Seen("a", Exclusive),
            Seen("p", Alone),
            Seen("b", Exclusive),
        ]);
        let batch = next_batch(&mut waiting);
        assert_eq!(ids(&batch), [("a", Exclusive), ("b", Exclusive)]);
        assert_eq!(ids(&next_batch(&mut waiting)), [("p", Alone)]);
        assert!(waiting.is_empty());
    }
}
