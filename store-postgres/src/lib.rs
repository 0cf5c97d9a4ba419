//! [`Store`] on PostgreSQL (15 or later), for many hosts on one database.
//!
//! The tables mirror the SQLite backend's (`schema.rs`); what differs is
//! concurrency: many hosts and many connections write at once, so every
//! decision about an instance is made under its row lock and checked
//! against its revision (`episode.rs` says how), inbox messages are
//! consumed by ID, and queues are claimed with `FOR UPDATE SKIP LOCKED`.
//!
//! The [`Store`] trait is synchronous (the engine calls it from blocking
//! threads); this backend runs its I/O on a small runtime of its own and
//! each call blocks on it. Serialization failures and deadlocks are
//! retried here; a database that cannot be reached, is shutting down, is
//! read-only or out of disk is [`Unavailable`].

mod batch;
mod counts;
mod effects;
mod episode;
mod hosts;
mod rows;
mod schema;
#[cfg(test)]
mod tests;
mod writes;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use deadpool_postgres::{
    GenericClient, Manager, ManagerConfig, Pool, RecyclingMethod, Transaction,
};
use reprise_core::model::{
    Failure, HistoryEntry, Instance, Message, Millis, QueuedMessage, RuntimeStatus,
};
use reprise_core::store::{
    ActivityWork, Applied, CommitObserver, CommitOutcome, ComponentVersion, DeliveryOutcome,
    DirectEpisode, Effect, EpisodeCommit, FollowUp, InstanceFilter, LeasedActivities, NewInstance,
    OutcomeUnknown, PageCursor, PageOrder, PurgeOutcome, StartOutcome, Store, StoreCounts,
    StoreError, StoreResult, Unavailable, WakeUp, WorkItem, WorkRead, held_until_resumed,
    stageable,
};
use tokio_postgres::NoTls;
use tokio_postgres::error::SqlState;

use crate::batch::Batcher;
use crate::episode::delete_instance;
use crate::hosts::{DB_NOW, Membership};
use crate::rows::{FINISHED, INSTANCE_COLUMN_COUNT, INSTANCE_COLUMNS, refs};

/// Connections per host, at most.
const POOL_SIZE: usize = 32;
/// How often the engine looks for work no live host owns.
const POLL_INTERVAL: Duration = Duration::from_secs(1);
/// How often a transaction that lost a serialization race or a deadlock
/// is tried again before the error is returned.
const RETRIES: usize = 8;

/// How this host takes part among the hosts of one database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// How long a host that stops renewing its lease (it died, or is cut
    /// off) keeps its instances, timers and activities before the other
    /// hosts take them over.
    pub lease_ttl: Duration,
    /// Where this host serves (its machine and the address it listens on,
    /// already bound): one process at a time can. A host registering on a
    /// seat ends the earlier runs registered on it, at once: they are
    /// gone, so their work is taken over without waiting out their lease.
    pub seat: Option<String>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            lease_ttl: Duration::from_secs(10),
            seat: None,
        }
    }
}
pub struct PostgresStore {
    pool: Pool,
    /// The hot writes go through it, several in a transaction.
    batcher: Batcher,
    membership: Arc<Membership>,
    /// Runs the connections' I/O; calls block on it. Always `Some` but in
    /// `drop`, which shuts it down without waiting (a store may be
    /// dropped on an async thread, where waiting is not allowed).
    runtime: Option<tokio::runtime::Runtime>,
    /// Told of each transaction the hot writes commit, once one is set.
    observer: batch::Observer,
    /// The last queued message's `seq` at the previous poll for work
    /// ([`unowned_work_sql`]).
    polled_through: AtomicI64,
}

impl Drop for PostgresStore {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl PostgresStore {
    /// Connects to the database at `url` (`postgres://...`), creating or
    /// checking its schema, and registers this host.
    pub fn open(url: &str, options: Options) -> anyhow::Result<PostgresStore> {
        let mut config: tokio_postgres::Config = url
            .parse()
            .with_context(|| format!("{url} is not a PostgreSQL connection URL"))?;
        // A host that dies mid-transaction must not hold rows for long.
        // And no JIT: its compiling costs short statements tens of
        // milliseconds each, when the planner misjudges a table's size.
        let given = config.get_options().unwrap_or_default().to_owned();
        config.options(format!(
            "{given} -c idle_in_transaction_session_timeout=30s -c lock_timeout=30s -c jit=off"
        ));
        config.connect_timeout(Duration::from_secs(5));
        // A connection to a server that vanished (no reset, no answer) is
        // found dead in seconds, not in the kernel's two hours.
        config
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(5))
            .keepalives_interval(Duration::from_secs(2))
            .keepalives_retries(3)
            .tcp_user_timeout(Duration::from_secs(15));
        let pool = connection_pool(&config, POOL_SIZE)?;
        // Batches wait briefly for a row lock: a batch stuck behind one
        // instance would hold up writes to every other (see batch.rs).
        let mut batch_config = config.clone();
        batch_config.options(format!(
            "{} -c lock_timeout={}ms",
            config.get_options().unwrap_or_default(),
            batch::LOCK_TIMEOUT.as_millis()
        ));
        let batch_pool = connection_pool(&batch_config, batch::BATCHES)?;
        // The lease's own connection: episodes holding every pooled one
        // (waiting on a row lock, say) must not cost this host its lease.
        let lease_pool = connection_pool(&config, 1)?;
        // One worker: it only moves bytes between the connections and the
        // calls, which are polled on their callers' threads. A second one
        // competed with the engine's threads for the cores, and more so
        // with several hosts on one machine.
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("reprise-postgres")
            .enable_all()
            .build()
            .context("cannot start the PostgreSQL client's runtime")?;
        anyhow::ensure!(
            options.lease_ttl >= Duration::from_millis(300),
            "the lease must last at least 300 ms"
        );
        let membership = Membership::new(options.lease_ttl, options.seat);
        let observer = batch::Observer::default();
        let store = PostgresStore {
            observer: Arc::clone(&observer),
            batcher: Batcher::start(
                &runtime,
                batch::Pools {
                    batches: batch_pool,
                    alone: pool.clone(),
                    observer: Arc::clone(&observer),
                },
                Arc::clone(&membership),
            ),
            pool,
            membership,
            runtime: Some(runtime),
            polled_through: AtomicI64::new(0),
        };
        store
            .block(async {
                let mut client = store
                    .pool
                    .get()
                    .await
                    .with_context(|| format!("cannot connect to PostgreSQL at {url}"))?;
                schema::migrate(&mut client).await?;
                hosts::end_earlier_runs(&lease_pool, &store.membership).await?;
                hosts::register(&lease_pool, &store.membership).await
            })
            .map_err(classified)?;
        let runtime = store.runtime.as_ref().expect("set above");
        runtime.spawn(hosts::heartbeat(lease_pool, Arc::clone(&store.membership)));
        runtime.spawn(hosts::listen(config, Arc::clone(&store.membership)));
        Ok(store)
    }

    /// Up to `limit` instances with work no live host owns, or this one
    /// owns with a message queued up to `seq` `waited`
    /// ([`unowned_work_sql`]), and the last queued message's `seq` now.
    fn work_waiting(&self, limit: usize, waited: i64) -> StoreResult<(i64, Vec<String>)> {
        let me = self.membership.id();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.statement(async |client| {
            let found =
                rows::query_opt(client, &unowned_work_sql(), &[&me, &limit, &waited]).await?;
            let row = found.context("a poll for work returned no row")?;
            Ok((row.get::<_, i64>(0), row.get::<_, Vec<String>>(1)))
        })
    }

    /// Runs `work` to its end on the store's runtime. Call it from a
    /// thread that may block, never from async code.
    fn block<T>(&self, work: impl Future<Output = T>) -> T {
        self.runtime
            .as_ref()
            .expect("the runtime lives as long as the store")
            .block_on(work)
    }

    /// Runs `work` in one READ COMMITTED transaction and commits it,
    /// trying again after a serialization failure or a deadlock.
    fn write<T>(
        &self,
        work: impl AsyncFnMut(&Transaction<'_>) -> anyhow::Result<T>,
    ) -> StoreResult<T> {
        self.block(transact(&self.pool, work))
    }

    /// Runs `work`, one statement, on a connection of the pool, outside any
    /// transaction: consistent by itself, and one round trip rather than
    /// the three of `BEGIN`, the statement and `COMMIT`.
    fn statement<T>(
        &self,
        work: impl AsyncFn(&deadpool_postgres::Client) -> anyhow::Result<T>,
    ) -> StoreResult<T> {
        self.block(async {
            let client = self.pool.get().await?;
            work(&client).await
        })
        .map_err(classified)
    }

    /// Runs `work` in one read-only REPEATABLE READ transaction: every
    /// statement sees the same snapshot.
    fn read<T>(&self, work: impl AsyncFn(&Transaction<'_>) -> anyhow::Result<T>) -> StoreResult<T> {
        self.block(async {
            let mut client = self.pool.get().await?;
            let transaction = client
                .build_transaction()
                .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()
                .await?;
            let value = work(&transaction).await?;
            transaction.commit().await?;
            anyhow::Ok(value)
        })
        .map_err(classified)
    }
}

/// Runs `work` in one READ COMMITTED transaction on a connection of `pool`
/// and commits it, trying again after a serialization failure or a
/// deadlock; the error, if any, is [`classified`].
async fn transact<T>(
    pool: &Pool,
    mut work: impl AsyncFnMut(&Transaction<'_>) -> anyhow::Result<T>,
) -> StoreResult<T> {
    let mut attempts = 0;
    loop {
        let result = async {
            let mut client = pool.get().await?;
            let transaction = client.transaction().await?;
            let value = work(&transaction).await?;
            transaction.commit().await.map_err(commit_failed)?;
            anyhow::Ok(value)
        }
        .await;
        match result {
            Err(error) if try_again(&mut attempts, &error) => {}
            result => return result.map_err(classified),
        }
    }
}

/// The condition on an activity a worker may claim, in a statement where
/// `$1` is the caller's clock and `live` the live hosts: never leased, its
/// lease over on both the caller's and the database's clock, or leased to
/// a host that is not alive.
fn activity_is_free() -> String {
    format!(
        "lease_until <= LEAST($1, {DB_NOW})
         OR lease_owner IS NOT NULL AND lease_owner NOT IN (SELECT host_id FROM live)"
    )
}

/// The statement behind [`Store::unowned_work`]: `$1` this host, `$2`
/// the limit, `$3` the last queued message's `seq` at the previous poll.
/// It returns that `seq` now, and the instances found.
///
/// Its cost follows the work waiting, never the number of instances: it
/// starts from the instances with queued messages (the inbox, a queue) or
/// pending effects (a partial index, read in its order so that the
/// planner takes it even before statistics say how few rows it holds),
/// and looks each up by its key (`OFFSET 0` keeps the planner from
/// scanning every instance instead). A host's own instance is found only
/// for a message queued before the previous poll: a newer one has its
/// wake-up on the way, and a poll that scheduled it would only make its
/// runner read again.
fn unowned_work_sql() -> String {
    format!(
        "WITH live AS (SELECT host_id FROM hosts WHERE alive_until > {DB_NOW}),
         waiting AS (
           SELECT DISTINCT instance_id FROM inbox
           UNION (SELECT instance_id FROM instances
                   WHERE outbox IS NOT NULL
                     AND (owner IS NULL OR owner = $1 OR owner NOT IN (SELECT host_id FROM live))
                   ORDER BY outbox LIMIT $2)),
         found AS (
           SELECT i.instance_id FROM waiting w, LATERAL (
               SELECT instance_id, owner, status, outbox FROM instances x
                WHERE x.instance_id = w.instance_id OFFSET 0) i
            WHERE i.owner IS NULL
               OR i.owner NOT IN (SELECT host_id FROM live)
               OR i.owner = $1 AND (i.outbox IS NOT NULL
                 OR EXISTS (SELECT 1 FROM inbox m WHERE m.instance_id = i.instance_id AND m.seq <= $3
                   -- Not a suspended one's held messages: those wait for a
                   -- resume, and reading them every poll would cost a replay.
                   AND (i.status <> 'Suspended' OR m.message::jsonb ->> 'type' IN ('Resume', 'Terminate'))))
            ORDER BY random() LIMIT $2)
         SELECT (SELECT COALESCE(max(seq), 0) FROM inbox), ARRAY(SELECT instance_id FROM found)"
    )
}

/// Whether a transaction that failed with `error` is tried again, after
/// `attempts` tries again so far (counted here).
fn try_again(attempts: &mut usize, error: &anyhow::Error) -> bool {
    let again = retryable(error) && *attempts < RETRIES;
    *attempts += usize::from(again);
    again
}

/// A pool of at most `size` connections to the database `config` names.
fn connection_pool(config: &tokio_postgres::Config, size: usize) -> anyhow::Result<Pool> {
    let manager = Manager::from_config(
        config.clone(),
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(size)
        .runtime(deadpool_postgres::Runtime::Tokio1)
        .wait_timeout(Some(Duration::from_secs(30)))
        .create_timeout(Some(Duration::from_secs(10)))
        .build()
        .context("cannot configure the PostgreSQL connection pool")
}

/// A failed `COMMIT`. Refused by the server, nothing was written (and the
/// error says why, to classify); lost with the connection, the outcome is
/// unknown: an error, but never "nothing was written" (`Unavailable`).
fn commit_failed(error: tokio_postgres::Error) -> anyhow::Error {
    if error.code().is_some() {
        return error.into();
    }
    OutcomeUnknown(error.to_string()).into()
}

/// The PostgreSQL error in `error`'s chain, if any.
fn database_error(error: &anyhow::Error) -> Option<&tokio_postgres::Error> {
    error
        .chain()
        .find_map(|cause| cause.downcast_ref::<tokio_postgres::Error>())
}

/// Whether the transaction lost a race it may win if tried again (a
/// serialization failure, a deadlock, a lock it waited for too long).
fn retryable(error: &anyhow::Error) -> bool {
    database_error(error)
        .and_then(|error| error.code())
        .is_some_and(|code| {
            *code == SqlState::T_R_SERIALIZATION_FAILURE
                || *code == SqlState::T_R_DEADLOCK_DETECTED
                || *code == SqlState::LOCK_NOT_AVAILABLE
        })
}

/// Why PostgreSQL failed, when the cause lies outside the host.
fn outside_cause(error: &anyhow::Error) -> Option<String> {
    if retryable(error) {
        // Still losing races after every retry: busy, not broken.
        return Some(
            "PostgreSQL kept aborting the transaction (serialization failures or deadlocks under contention)"
                .to_owned(),
        );
    }
    if let Some(pool) = error
        .chain()
        .find_map(|cause| cause.downcast_ref::<deadpool_postgres::PoolError>())
    {
        return Some(format!("no connection to PostgreSQL: {pool}"));
    }
    let database = database_error(error)?;
    if database.is_closed() {
        return Some("the connection to PostgreSQL was lost".to_owned());
    }
    let Some(code) = database.code() else {
        // No SQL state: the connection failed (refused, reset), or a
        // value did not convert (a fault, not the database's state).
        let io = std::error::Error::source(database)
            .is_some_and(|source| source.downcast_ref::<std::io::Error>().is_some());
        return io.then(|| format!("PostgreSQL cannot be reached: {database}"));
    };
    let class = &code.code()[..2];
    match class {
        // Connection exceptions, insufficient resources (disk full, out of
        // memory, too many connections), operator intervention (shutdown).
        "08" | "53" | "57" => Some(format!("PostgreSQL: {database}")),
        _ if *code == SqlState::READ_ONLY_SQL_TRANSACTION => {
            Some("the database is read-only".to_owned())
        }
        _ => None,
    }
}

/// `error`, with [`Unavailable`] in its chain if PostgreSQL failed for a
/// cause outside the host.
fn marked(error: anyhow::Error) -> anyhow::Error {
    match outside_cause(&error) {
        Some(cause) => error.context(Unavailable(cause)),
        None => error,
    }
}

/// `error` as the store reports it (see [`marked`]).
fn classified(error: anyhow::Error) -> StoreError {
    marked(error).into()
}

async fn select_instance(
    client: &impl GenericClient,
    id: &str,
) -> anyhow::Result<Option<Instance>> {
    let sql = format!("SELECT {INSTANCE_COLUMNS} FROM instances WHERE instance_id = $1");
    rows::query_opt(client, &sql, &[&id])
        .await?
        .as_ref()
        .map(rows::instance)
        .transpose()
}

/// The current generation's history of `id`, as long as its row says
/// (staged entries beyond are left out).
async fn select_history(
    client: &impl GenericClient,
    id: &str,
) -> anyhow::Result<Vec<HistoryEntry>> {
    rows::query(
        client,
        "SELECT h.entry FROM history h JOIN instances i
           ON i.instance_id = h.instance_id AND i.generation = h.generation
         WHERE h.instance_id = $1 AND h.seq < i.history_len ORDER BY h.seq",
        &[&id],
    )
    .await?
    .iter()
    .map(|row| history_entry(id, row.get(0)))
    .collect()
}

/// What [`read_work`] found.
enum Loaded {
    /// The work, if any.
    Work(Option<Box<WorkItem>>),
    /// To be read again in one snapshot (outside one only): the row moved
    /// on while it was read, or what a suspended instance has queued
    /// beyond its batch must be read with the batch.
    InOneSnapshot,
}

/// Where [`read_work`] runs.
#[derive(Clone, Copy, PartialEq, Eq)]
enum ReadIn {
    /// Statements of their own, each consistent by itself.
    Statements,
    /// One REPEATABLE READ snapshot.
    Snapshot,
}

/// The work of `id` ([`Store::load_work`]). Outside a snapshot, consistent
/// enough: the row and its oldest messages in one statement, then (only
/// for a termination behind many messages) the rest of the messages, which
/// may be newer than the row but never older (a commit that lands in
/// between leaves the row's revision old, so the episode's commit is
/// refused as stale), and the history the row names (its generation, its
/// length), which is [`Loaded::InOneSnapshot`] if it is no longer all
/// there. What a suspended instance has queued beyond a full batch is read
/// in one snapshot with the batch: statements of their own could see a
/// resume without a suspension queued before it whose `seq` is lower but
/// which committed later.
async fn read_work(
    client: &impl GenericClient,
    id: &str,
    read: WorkRead,
    read_in: ReadIn,
) -> anyhow::Result<Loaded> {
    let sql = format!(
        "SELECT {INSTANCE_COLUMNS}, history_len, outbox IS NOT NULL, terminating,
           ARRAY(SELECT seq FROM inbox WHERE instance_id = $1 ORDER BY seq LIMIT $2),
           ARRAY(SELECT message FROM inbox WHERE instance_id = $1 ORDER BY seq LIMIT $2)
         FROM instances WHERE instance_id = $1"
    );
    let limit = i64::try_from(read.max_messages).unwrap_or(i64::MAX);
    let Some(row) = rows::query_opt(client, &sql, &[&id, &limit]).await? else {
        return Ok(Loaded::Work(None));
    };
    let instance = rows::instance(&row)?;
    let history_len = row.get::<_, i32>(INSTANCE_COLUMN_COUNT) as usize;
    let effects_pending: bool = row.get(INSTANCE_COLUMN_COUNT + 1);
    let terminating: bool = row.get(INSTANCE_COLUMN_COUNT + 2);
    let seqs: Vec<i64> = row.get(INSTANCE_COLUMN_COUNT + 3);
    let texts: Vec<String> = row.get(INSTANCE_COLUMN_COUNT + 4);
    let mut messages = seqs
        .into_iter()
        .zip(&texts)
        .map(|(seq, text)| QueuedMessage::read(id, seq, text))
        .collect::<anyhow::Result<Vec<_>>>()?;
    if messages.is_empty() && !effects_pending {
        return Ok(Loaded::Work(None));
    }
    if messages.len() == read.max_messages {
        if terminating {
            messages = select_messages(client, id, usize::MAX).await?;
        } else if held_until_resumed(&instance, &messages) {
            if read_in == ReadIn::Statements {
                return Ok(Loaded::InOneSnapshot);
            }
            let last = messages.last().map_or(0, |queued| queued.seq);
            messages.extend(select_beyond_held(client, id, last).await?);
        }
    }
    let history = match read.history {
        true => select_history_of(client, id, instance.generation, history_len).await?,
        false => Vec::new(),
    };
    if history.len() < history_len && read.history {
        return Ok(Loaded::InOneSnapshot);
    }
    Ok(Loaded::Work(Some(Box::new(WorkItem {
        instance,
        history,
        history_len,
        messages,
        effects_pending,
    }))))
}

/// The first `len` entries of `id`'s history in generation `generation`
/// (fewer if they are gone: a later generation replaced them).
async fn select_history_of(
    client: &impl GenericClient,
    id: &str,
    generation: u32,
    len: usize,
) -> anyhow::Result<Vec<HistoryEntry>> {
    rows::query(
        client,
        "SELECT entry FROM history WHERE instance_id = $1 AND generation = $2 AND seq < $3
         ORDER BY seq",
        &[&id, &(generation as i32), &(len as i32)],
    )
    .await?
    .iter()
    .map(|row| history_entry(id, row.get(0)))
    .collect()
}

fn history_entry(id: &str, entry: &str) -> anyhow::Result<HistoryEntry> {
    serde_json::from_str(entry).with_context(|| {
        format!("instance {id} has a history entry this host cannot read: {entry}")
    })
}

/// The oldest `limit` messages queued for `id`.
async fn select_messages(
    client: &impl GenericClient,
    id: &str,
    limit: usize,
) -> anyhow::Result<Vec<QueuedMessage>> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    rows::query(
        client,
        "SELECT seq, message FROM inbox WHERE instance_id = $1 ORDER BY seq LIMIT $2",
        &[&id, &limit],
    )
    .await?
    .iter()
    .map(|row| QueuedMessage::read(id, row.get(0), row.get(1)))
    .collect()
}

/// The messages queued for `id` after `seq` that act while it is
/// suspended, up to the first that ends the suspension; none if none does
/// (`WorkRead::max_messages`). The events held between them stay in the
/// database (which looks at each one's `type`).
async fn select_beyond_held(
    client: &impl GenericClient,
    id: &str,
    seq: i64,
) -> anyhow::Result<Vec<QueuedMessage>> {
    let kind = "message::jsonb ->> 'type'";
    let sql = format!(
        "SELECT seq, message FROM inbox
         WHERE instance_id = $1 AND seq > $2 AND {kind} IN ('{}')
           AND seq <= (SELECT min(seq) FROM inbox
                        WHERE instance_id = $1 AND seq > $2 AND {kind} IN ('{}'))
         ORDER BY seq",
        Message::ACTING_WHILE_SUSPENDED.join("', '"),
        Message::ENDING_SUSPENSION.join("', '"),
    );
    rows::query(client, &sql, &[&id, &seq])
        .await?
        .iter()
        .map(|row| QueuedMessage::read(id, row.get(0), row.get(1)))
        .collect()
}

impl Store for PostgresStore {
    fn start_instance(
        &self,
        new: &NewInstance,
        direct: Option<DirectEpisode>,
    ) -> StoreResult<(StartOutcome, Applied)> {
        let started = self.batcher.apply(writes::Start {
            new: new.clone(),
            direct,
        })?;
        if started.0 == StartOutcome::Started {
            self.membership.owned(&new.id);
        }
        Ok(started)
    }

    fn deliver(
        &self,
        id: &str,
        message: &Message,
        direct: Option<DirectEpisode>,
    ) -> StoreResult<(DeliveryOutcome, Applied)> {
        let delivered = self.batcher.apply(writes::Delivery {
            id: id.to_owned(),
            message: message.clone(),
            direct,
        })?;
        Ok((delivered.outcome, delivered.applied))
    }

    fn instance(&self, id: &str) -> StoreResult<Option<Instance>> {
        self.statement(async |client| select_instance(client, id).await)
    }

    fn instance_with_history(
        &self,
        id: &str,
    ) -> StoreResult<Option<(Instance, Vec<HistoryEntry>)>> {
        self.read(async |transaction| {
            let Some(instance) = select_instance(transaction, id).await? else {
                return Ok(None);
            };
            let history = select_history(transaction, id).await?;
            Ok(Some((instance, history)))
        })
    }

    fn purge(&self, id: &str) -> StoreResult<PurgeOutcome> {
        self.write(async |transaction| {
            let statement = transaction
                .prepare_cached(&format!(
                    "SELECT {INSTANCE_COLUMNS}, outbox IS NOT NULL FROM instances
                     WHERE instance_id = $1 FOR UPDATE"
                ))
                .await?;
            let Some(row) = transaction.query_opt(&statement, &[&id]).await? else {
                return Ok(PurgeOutcome::NotFound);
            };
            let instance = rows::instance(&row)?;
            // Not while its last effects are pending: they would be lost.
            if !instance.status.is_terminal() || row.get::<_, bool>(INSTANCE_COLUMN_COUNT) {
                return Ok(PurgeOutcome::NotFinished(instance.status));
            }
            delete_instance(transaction, id).await?;
            Ok(PurgeOutcome::Purged)
        })
    }

    fn query_instances(
        &self,
        filter: &InstanceFilter,
        after: Option<&PageCursor>,
        limit: usize,
    ) -> StoreResult<Vec<Instance>> {
        let (mut condition, mut params) = rows::filter_clause(filter);
        if let Some(cursor) = after {
            params.push(Box::new(cursor.created_at as i64));
            params.push(Box::new(cursor.instance_id.clone()));
            let (at, id) = (params.len() - 1, params.len());
            let beyond = match filter.order {
                PageOrder::OldestFirst => ">",
                PageOrder::NewestFirst => "<",
            };
            condition.push_str(&format!(
                " AND (created_at, instance_id) {beyond} (${at}, ${id})"
            ));
        }
        params.push(Box::new(limit as i64));
        let direction = match filter.order {
            PageOrder::OldestFirst => "ASC",
            PageOrder::NewestFirst => "DESC",
        };
        let sql = format!(
            "SELECT {INSTANCE_COLUMNS} FROM instances WHERE {condition}
             ORDER BY created_at {direction}, instance_id {direction} LIMIT ${}",
            params.len()
        );
        self.statement(async |client| {
            rows::query(client, &sql, &refs(&params))
                .await?
                .iter()
                .map(rows::instance)
                .collect()
        })
    }

    fn count_instances(&self, filter: &InstanceFilter, cap: u64) -> StoreResult<u64> {
        let (condition, mut params) = rows::filter_clause(filter);
        params.push(Box::new(i64::try_from(cap).unwrap_or(i64::MAX)));
        let sql = format!(
            "SELECT count(*) FROM (SELECT 1 FROM instances WHERE {condition} LIMIT ${}) AS matching",
            params.len()
        );
        self.statement(async |client| {
            let row = client.query_one(&sql, &refs(&params)).await?;
            Ok(row.get::<_, i64>(0) as u64)
        })
    }

    fn instance_counts(&self) -> StoreResult<Vec<(RuntimeStatus, u64)>> {
        self.write(async |transaction| {
            counts::fold(transaction).await?;
            counts::read(transaction).await
        })
    }

    fn component_versions(&self) -> StoreResult<Vec<ComponentVersion>> {
        self.statement(async |client| {
            let rows = client
                .query(
                    "SELECT c.version, c.stored_at, c.retired_at,
                            (SELECT count(*) FROM instances i WHERE i.version = c.version
                               AND i.status IN ('Pending', 'Running', 'Suspended', 'ContinuedAsNew'))
                     FROM components c ORDER BY c.stored_at, c.version",
                    &[],
                )
                .await?;
            Ok(rows
                .iter()
                .map(|row| ComponentVersion {
                    version: row.get(0),
                    stored_at: row.get::<_, i64>(1) as Millis,
                    retired_at: row.get::<_, Option<i64>>(2).map(|at| at as Millis),
                    live_instances: row.get::<_, i64>(3) as u64,
                })
                .collect())
        })
    }

    fn purge_finished(&self, filter: &InstanceFilter, limit: usize) -> StoreResult<usize> {
        let (condition, mut params) = rows::filter_clause(filter);
        params.push(Box::new(limit as i64));
        let select = format!(
            "SELECT instance_id FROM instances
             WHERE {condition} AND status IN {FINISHED} AND outbox IS NULL
             ORDER BY created_at, instance_id LIMIT ${} FOR UPDATE SKIP LOCKED",
            params.len()
        );
        self.write(async |transaction| {
            let ids: Vec<String> = transaction
                .query(&select, &refs(&params))
                .await?
                .iter()
                .map(|row| row.get(0))
                .collect();
            for id in &ids {
                delete_instance(transaction, id).await?;
            }
            Ok(ids.len())
        })
    }

    /// Not in one snapshot (a transaction costs two more round trips), but
    /// in an order that makes a mix harmless (see [`read_work`]); if the
    /// history it names is gone meanwhile, or a suspended instance's batch
    /// is full, again in one snapshot.
    fn load_work(&self, id: &str, read: WorkRead) -> StoreResult<Option<WorkItem>> {
        if let Loaded::Work(work) =
            self.statement(async |client| read_work(client, id, read, ReadIn::Statements).await)?
        {
            return Ok(work.map(|work| *work));
        }
        match self
            .read(async |transaction| read_work(transaction, id, read, ReadIn::Snapshot).await)?
        {
            Loaded::Work(work) => Ok(work.map(|work| *work)),
            Loaded::InOneSnapshot => Err(anyhow::anyhow!(
                "instance {id}: its history and row differ in one snapshot"
            )
            .into()),
        }
    }

    fn commit_episode(&self, commit: &EpisodeCommit) -> StoreResult<CommitOutcome> {
        let outcome = self.batcher.apply(writes::Commit(commit.clone()))?;
        let finished =
            matches!(outcome, CommitOutcome::Committed(_)) && commit.updated.status.is_terminal();
        if outcome == CommitOutcome::Stale || finished {
            // Perhaps no longer ours: claim it again before the next try.
            // (Or finished: not kept in memory for nothing.)
            self.membership.disowned(&commit.read.id);
        }
        Ok(outcome)
    }

    fn stage_history(
        &self,
        id: &str,
        generation: u32,
        first_seq: usize,
        entries: Vec<HistoryEntry>,
    ) -> StoreResult<()> {
        self.write(async |transaction| {
            // Locked, so a commit that moves the instance on is either
            // before (and seen here) or after (and writes over this).
            let current = rows::query_opt(
                transaction,
                "SELECT generation, history_len FROM instances WHERE instance_id = $1 FOR SHARE",
                &[&id],
            )
            .await?
            .map(|row| (row.get::<_, i32>(0) as u32, row.get::<_, i32>(1) as usize));
            let writable = stageable(generation, first_seq, entries.len(), current);
            let first = first_seq + writable.start;
            episode::insert_history(transaction, id, generation, first, &entries[writable]).await
        })
    }

    fn stage_effects(
        &self,
        id: &str,
        token: i64,
        first: usize,
        effects: Vec<Effect>,
    ) -> StoreResult<()> {
        self.write(async |transaction| {
            effects::stage(transaction, id, token, first, effects.clone()).await
        })
    }

    fn apply_pending_effects(&self, id: &str, limit: usize) -> StoreResult<Option<FollowUp>> {
        let me = self.membership.id();
        self.write(async |transaction| effects::apply_pending(transaction, &me, id, limit).await)
    }

    fn queued_messages(&self, id: &str) -> StoreResult<Vec<i64>> {
        self.statement(async |client| {
            Ok(rows::query(
                client,
                "SELECT seq FROM inbox WHERE instance_id = $1 ORDER BY seq",
                &[&id],
            )
            .await?
            .iter()
            .map(|row| row.get(0))
            .collect())
        })
    }

    /// Among hosts, the work to resume is what no live host owns (see
    /// [`Store::unowned_work`]): a live host's queued work is its own.
    fn instances_with_messages(&self) -> StoreResult<Vec<String>> {
        // Every message counts as waited for.
        Ok(self.work_waiting(usize::MAX, i64::MAX)?.1)
    }

    fn fire_due_timers(&self, now: Millis) -> StoreResult<Vec<String>> {
        self.write(async |transaction| {
            // Claimed with SKIP LOCKED: hosts firing at once split the work.
            let due = rows::query(
                transaction,
                "DELETE FROM timers t USING (
                       SELECT instance_id, generation, task_id FROM timers
                        WHERE fire_at <= $1 ORDER BY fire_at LIMIT 1000 FOR UPDATE SKIP LOCKED) d
                     WHERE t.instance_id = d.instance_id AND t.generation = d.generation
                       AND t.task_id = d.task_id
                     RETURNING t.instance_id, t.generation, t.task_id, t.fire_at",
                &[&(now as i64)],
            )
            .await?;
            let mut instances = Vec::new();
            let mut messages = Vec::new();
            for row in &due {
                let message = Message::TimerFired {
                    generation: row.get::<_, i32>(1) as u32,
                    id: row.get::<_, i64>(2) as u64,
                    fire_at: row.get::<_, i64>(3) as Millis,
                };
                instances.push(row.get::<_, String>(0));
                messages.push(serde_json::to_string(&message)?);
            }
            // One statement for them all, in the order they came due.
            rows::execute(
                transaction,
                "INSERT INTO inbox (instance_id, message)
                 SELECT i, m FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS u(i, m, o)
                 ORDER BY o",
                &[&instances, &messages],
            )
            .await?;
            instances.sort();
            instances.dedup();
            Ok(instances)
        })
    }

    fn next_timer_due(&self) -> StoreResult<Option<Millis>> {
        self.statement(async |client| {
            let due: Option<i64> =
                rows::query(client, "SELECT MIN(fire_at) FROM timers", &[]).await?[0].get(0);
            Ok(due.map(|due| due as Millis))
        })
    }

    fn claim_activities(
        &self,
        now: Millis,
        lease: Millis,
        limit: usize,
    ) -> StoreResult<Vec<ActivityWork>> {
        let me = self.membership.id();
        self.write(async |transaction| {
            let free = activity_is_free();
            let claimed = rows::query(transaction, &format!(
                        "WITH live AS (SELECT host_id FROM hosts WHERE alive_until > {DB_NOW})
                         UPDATE activities a SET lease_until = GREATEST($1, {DB_NOW}) + $2, lease_owner = $4, leased_from = NULL FROM (
                           SELECT key FROM activities WHERE {free}
                            ORDER BY key LIMIT $3 FOR UPDATE SKIP LOCKED) c
                         WHERE a.key = c.key
                         RETURNING a.key, a.instance_id, a.generation, a.task_id, a.name, a.input,
                           (SELECT version FROM instances i WHERE i.instance_id = a.instance_id),
                           (SELECT trace FROM instances i WHERE i.instance_id = a.instance_id),
                           a.attempt"
                    ),
                    &[&(now as i64), &(lease as i64), &(limit as i64), &me],
                )
                .await?;
            let mut claimed: Vec<ActivityWork> = claimed
                .iter()
                .map(|row| ActivityWork {
                    key: row.get(0),
                    instance_id: row.get(1),
                    generation: row.get::<_, i32>(2) as u32,
                    task_id: row.get::<_, i64>(3) as u64,
                    name: row.get(4),
                    input: row.get(5),
                    version: row.get(6),
                    trace: row.get(7),
                    attempt: row.get::<_, i32>(8) as u32,
                })
                .collect();
            claimed.sort_by_key(|work| work.key);
            Ok(claimed)
        })
    }

    fn complete_activity(
        &self,
        work: &ActivityWork,
        result: Result<String, Failure>,
        direct: Option<DirectEpisode>,
    ) -> StoreResult<Option<Applied>> {
        self.batcher.apply(writes::ActivityResult {
            work: work.clone(),
            result,
            direct,
        })
    }

    fn release_activity_leases(&self) -> StoreResult<usize> {
        // Only hosts that are gone: a live host's activities are running.
        self.write(async |transaction| {
            Ok(rows::execute(
                transaction,
                &format!(
                    "UPDATE activities SET lease_until = 0, lease_owner = NULL
                         WHERE lease_owner IS NOT NULL AND lease_owner NOT IN
                           (SELECT host_id FROM hosts WHERE alive_until > {DB_NOW})"
                ),
                &[],
            )
            .await? as usize)
        })
    }

    fn release_lost_leases(&self, leased: &LeasedActivities) -> StoreResult<usize> {
        let me = self.membership.id();
        let tasks: Vec<i64> = leased.task_ids.iter().map(|&task| task as i64).collect();
        self.statement(async |client| {
            Ok(rows::execute(
                client,
                "UPDATE activities SET lease_until = 0, lease_owner = NULL, leased_from = NULL
                  WHERE instance_id = $1 AND generation = $2 AND task_id = ANY($3::bigint[])
                    AND lease_owner = $4 AND leased_from = $5",
                &[
                    &leased.instance_id,
                    &(leased.generation as i32),
                    &tasks,
                    &me,
                    &(leased.from as i64),
                ],
            )
            .await? as usize)
        })
    }

    fn record_components(
        &self,
        added: &[(String, Vec<u8>)],
        current: &[String],
        now: Millis,
    ) -> StoreResult<()> {
        let now = now as i64;
        *self
            .membership
            .served
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = current.to_vec();
        let me = self.membership.id();
        self.write(async |transaction| {
            for (version, bytes) in added {
                rows::execute(
                    transaction,
                    "INSERT INTO components (version, stored_at, bytes) VALUES ($1, $2, $3)
                         ON CONFLICT (version) DO NOTHING",
                    &[version, &now, bytes],
                )
                .await?;
            }
            // The database is the registry: a version is retired once no
            // live host serves it, whatever this host's folder holds.
            rows::execute(transaction, "DELETE FROM served WHERE host_id = $1", &[&me]).await?;
            rows::execute(
                transaction,
                "INSERT INTO served (host_id, version) SELECT $1, unnest($2::text[])",
                &[&me, &current],
            )
            .await?;
            rows::execute(
                transaction,
                &format!(
                    "UPDATE components c SET retired_at = $1
                         WHERE retired_at IS NULL AND NOT EXISTS (
                           SELECT 1 FROM served s JOIN hosts h ON h.host_id = s.host_id
                            WHERE s.version = c.version AND h.alive_until > {DB_NOW})"
                ),
                &[&now],
            )
            .await?;
            rows::execute(
                transaction,
                "UPDATE components SET retired_at = NULL
                     WHERE retired_at IS NOT NULL AND version = ANY($1)",
                &[&current],
            )
            .await?;
            Ok(())
        })
    }

    fn component(&self, version: &str) -> StoreResult<Option<Vec<u8>>> {
        self.statement(async |client| {
            Ok(rows::query_opt(
                client,
                "SELECT bytes FROM components WHERE version = $1",
                &[&version],
            )
            .await?
            .map(|row| row.get(0)))
        })
    }

    fn collect_components(&self, retired_before: Millis) -> StoreResult<Vec<String>> {
        self.write(async |transaction| {
            Ok(rows::query(
                transaction,
                &format!(
                    "DELETE FROM components
                         WHERE retired_at IS NOT NULL AND retired_at <= $1
                           AND NOT EXISTS (
                             SELECT 1 FROM instances
                             WHERE instances.version = components.version
                               AND status IN ('Pending', 'Running', 'Suspended', 'Failed'))
                           AND NOT EXISTS (
                             SELECT 1 FROM served s JOIN hosts h ON h.host_id = s.host_id
                             WHERE s.version = components.version AND h.alive_until > {DB_NOW})
                         RETURNING version"
                ),
                &[&(retired_before as i64)],
            )
            .await?
            .iter()
            .map(|row| row.get(0))
            .collect())
        })
    }

    fn counts(&self, now: Millis) -> StoreResult<StoreCounts> {
        let instances = self.instance_counts()?;
        self.statement(async |client| {
            let mut counts = StoreCounts {
                instances: instances.clone(),
                ..StoreCounts::default()
            };
            // Waiting as `claim_activities` sees it.
            let free = activity_is_free();
            let queues = client
                .query_one(
                    &format!(
                        "WITH live AS (SELECT host_id FROM hosts WHERE alive_until > {DB_NOW}),
                         waiting AS (SELECT ({free}) AS free FROM activities)
                         SELECT (SELECT count(*) FROM inbox), (SELECT count(*) FROM timers),
                                (SELECT count(*) FILTER (WHERE free) FROM waiting),
                                (SELECT count(*) FILTER (WHERE NOT free) FROM waiting)"
                    ),
                    &[&(now as i64)],
                )
                .await?;
            let count = |column: usize| queues.get::<_, i64>(column) as u64;
            counts.messages = count(0);
            counts.timers = count(1);
            counts.activities_waiting = count(2);
            counts.activities_leased = count(3);
            Ok(counts)
        })
    }

    fn observe_commits(&self, observer: Arc<dyn CommitObserver>) {
        let _ = self.observer.set(observer);
    }

    fn claim(&self, id: &str) -> StoreResult<bool> {
        if self.membership.leaving() {
            return Ok(false);
        }
        if self.membership.owns(id) {
            return Ok(true);
        }
        let me = self.membership.id();
        // One statement: it takes the instance if no live host holds it,
        // and otherwise wakes the host that does.
        let sql = format!(
            "WITH live AS (SELECT host_id FROM hosts WHERE alive_until > {DB_NOW}),
             claimed AS (
               UPDATE instances SET owner = $2
                WHERE instance_id = $1 AND $2 IN (SELECT host_id FROM live)
                  AND (owner IS NULL OR owner = $2 OR owner NOT IN (SELECT host_id FROM live))
                RETURNING 1),
             told AS (
               SELECT pg_notify('{prefix}' || owner, $1) FROM instances
                WHERE instance_id = $1 AND owner <> $2 AND NOT EXISTS (SELECT 1 FROM claimed))
             SELECT EXISTS (SELECT 1 FROM claimed), (SELECT count(*) FROM told)",
            prefix = hosts::CHANNEL_PREFIX
        );
        let claimed = self.statement(async |client| {
            Ok(rows::query(client, &sql, &[&id, &me]).await?[0].get::<_, bool>(0))
        })?;
        if claimed {
            self.membership.owned(id);
        }
        Ok(claimed)
    }

    fn seize(&self, id: &str) -> StoreResult<()> {
        let me = self.membership.id();
        self.write(async |transaction| {
            rows::execute(
                transaction,
                "UPDATE instances SET owner = $2 WHERE instance_id = $1",
                &[&id, &me],
            )
            .await?;
            Ok(())
        })?;
        self.membership.owned(id);
        Ok(())
    }

    fn unowned_work(&self, limit: usize) -> StoreResult<Vec<String>> {
        let waited = self.polled_through.load(Ordering::Relaxed);
        let (through, ids) = self.work_waiting(limit, waited)?;
        self.polled_through.store(through, Ordering::Relaxed);
        Ok(ids)
    }

    fn poll_interval(&self) -> Option<Duration> {
        Some(POLL_INTERVAL)
    }

    fn on_wake(&self, wake: Box<dyn Fn(WakeUp<'_>) + Send + Sync>) {
        self.membership.set_wake(wake);
    }

    fn hand_over(&self, id: &str, to: &str) -> StoreResult<bool> {
        let me = self.membership.id();
        self.membership.disowned(id);
        // One statement: the new owner is told once it owns the instance.
        let sql = format!(
            "WITH moved AS (
               UPDATE instances SET owner = $3
                WHERE instance_id = $1 AND owner = $2
                  AND (SELECT count(*) FROM hosts
                        WHERE host_id IN ($2, $3) AND alive_until > {DB_NOW}) = 2
                RETURNING instance_id),
             told AS (SELECT pg_notify('{prefix}' || $3, instance_id) FROM moved)
             SELECT count(*) FROM told",
            prefix = hosts::CHANNEL_PREFIX
        );
        self.statement(async |client| {
            Ok(rows::query(client, &sql, &[&id, &me, &to]).await?[0].get::<_, i64>(0) > 0)
        })
    }

    fn leave(&self) -> StoreResult<()> {
        // No more claims, and no heartbeat to register again.
        self.membership.leave();
        let me = self.membership.id();
        self.write(async |transaction| {
            rows::execute(
                transaction,
                "UPDATE instances SET owner = NULL WHERE owner = $1",
                &[&me],
            )
            .await?;
            rows::execute(
                transaction,
                "UPDATE activities SET lease_until = 0, lease_owner = NULL WHERE lease_owner = $1",
                &[&me],
            )
            .await?;
            rows::execute(transaction, "DELETE FROM hosts WHERE host_id = $1", &[&me]).await?;
            Ok(())
        })
    }
}
