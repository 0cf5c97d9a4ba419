//! [`Store`] on an embedded SQLite file: WAL journal, `synchronous=FULL`, so a
//! returned `Ok` survives a crash or power loss.
//!
//! Tables: `instances` (one row per ID, the current generation), `history`
//! (entries of each instance's current generation), `inbox` (accepted
//! messages not yet applied), `timers` (durable timers not yet due) and
//! `activities` (activities to run, leased to a worker while they run).
//! History entries and messages are JSON of the `model` types.
//!
//! Writes are group-committed by one writer thread ([`run_writer`]); reads
//! use their own connection, so they never wait for a write.

use std::path::Path;
use std::sync::mpsc::{Receiver, SyncSender};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use anyhow::Context as _;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use reprise_core::entity::EntityId;
use reprise_core::model::{
    Failure, HistoryEntry, Instance, Message, Millis, ParentTask, QueuedMessage, RuntimeStatus,
    now_millis,
};
use reprise_core::store::{
    ActivityWork, Applied, CommitObserver, CommitOutcome, ComponentVersion, DeliveryOutcome,
    DirectEpisode, Effect, EpisodeCommit, FollowUp, HistoryChange, InstanceFilter,
    LeasedActivities, NewInstance, PageCursor, PageOrder, PurgeOutcome, StartOutcome, Store,
    StoreCounts, StoreError, StoreResult, Unavailable, WorkItem, WorkRead, held_until_resumed,
    stageable,
};

/// Bumped when the schema changes; `open` refuses files from the future.
const SCHEMA_VERSION: i64 = 9;

/// The triggers that keep `instance_counts` (of orchestrations: an
/// entity's ID begins with `@`): in the schema, and in the upgrades that
/// add that table and change them (so no write can come between).
macro_rules! count_triggers {
    () => {
        "
CREATE TRIGGER IF NOT EXISTS count_inserted AFTER INSERT ON instances
    WHEN NEW.instance_id NOT LIKE '@%' BEGIN
    INSERT INTO instance_counts VALUES (NEW.status, 1)
        ON CONFLICT (status) DO UPDATE SET total = total + 1;
END;
CREATE TRIGGER IF NOT EXISTS count_deleted AFTER DELETE ON instances
    WHEN OLD.instance_id NOT LIKE '@%' BEGIN
    UPDATE instance_counts SET total = total - 1 WHERE status = OLD.status;
END;
CREATE TRIGGER IF NOT EXISTS count_changed AFTER UPDATE OF status ON instances
    WHEN OLD.status <> NEW.status AND NEW.instance_id NOT LIKE '@%' BEGIN
    UPDATE instance_counts SET total = total - 1 WHERE status = OLD.status;
    INSERT INTO instance_counts VALUES (NEW.status, 1)
        ON CONFLICT (status) DO UPDATE SET total = total + 1;
END;
"
    };
}

const SCHEMA: &str = concat!(
    r#"
CREATE TABLE IF NOT EXISTS instances (
    instance_id   TEXT PRIMARY KEY NOT NULL,
    name          TEXT NOT NULL,
    status        TEXT NOT NULL,
    generation    INTEGER NOT NULL,
    input         TEXT NOT NULL,
    output        TEXT,
    custom_status TEXT,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    parent_instance_id TEXT,
    parent_generation  INTEGER,
    parent_task_id     INTEGER,
    -- The input of the first generation, for restarts.
    original_input     TEXT,
    -- The component version the current generation runs on (components.version).
    version            TEXT,
    -- 1 while a termination is queued in the inbox (then nothing more is
    -- accepted); read instead of searching the inbox, which may be long.
    terminating        INTEGER NOT NULL DEFAULT 0,
    -- Entries in the current generation's history: rows beyond it are a
    -- staged commit's, not yet (or never) committed.
    history_len        INTEGER NOT NULL DEFAULT 0,
    -- The token of a staged commit whose effects are pending (outbox).
    outbox             INTEGER,
    -- Bumped by every commit: what a commit is checked against (fencing).
    revision           INTEGER NOT NULL DEFAULT 0,
    -- The instance's trace context, if traced (the host's format).
    trace              TEXT
);
CREATE INDEX IF NOT EXISTS instances_by_created_time ON instances (created_at, instance_id);
CREATE INDEX IF NOT EXISTS instances_by_parent ON instances (parent_instance_id)
    WHERE parent_instance_id IS NOT NULL;
CREATE TABLE IF NOT EXISTS history (
    instance_id TEXT NOT NULL,
    generation  INTEGER NOT NULL,
    seq         INTEGER NOT NULL,
    entry       TEXT NOT NULL,
    PRIMARY KEY (instance_id, generation, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS inbox (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    instance_id TEXT NOT NULL,
    message     TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS inbox_by_instance ON inbox (instance_id, seq);
CREATE TABLE IF NOT EXISTS timers (
    instance_id TEXT NOT NULL,
    generation  INTEGER NOT NULL,
    task_id     INTEGER NOT NULL,
    fire_at     INTEGER NOT NULL,
    PRIMARY KEY (instance_id, generation, task_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS timers_by_due_time ON timers (fire_at);
CREATE TABLE IF NOT EXISTS activities (
    key         INTEGER PRIMARY KEY AUTOINCREMENT,
    instance_id TEXT NOT NULL,
    generation  INTEGER NOT NULL,
    task_id     INTEGER NOT NULL,
    name        TEXT NOT NULL,
    input       TEXT NOT NULL,
    lease_until INTEGER NOT NULL DEFAULT 0,
    attempt     INTEGER NOT NULL DEFAULT 1,
    -- For a lease taken by the commit that inserted the activity, when
    -- that commit's lease began: what names it (release_lost_leases).
    leased_from INTEGER,
    UNIQUE (instance_id, generation, task_id)
);
CREATE INDEX IF NOT EXISTS activities_by_lease ON activities (lease_until, key);
-- Every component version an instance may run on, by the hash of its bytes.
-- The bytes come last and are never updated: SQLite rewrites a whole row
-- on update and reads past a blob to reach later columns.
CREATE TABLE IF NOT EXISTS components (
    version    TEXT PRIMARY KEY NOT NULL,
    stored_at  INTEGER NOT NULL,
    -- When the functions folder stopped serving it; NULL while served.
    retired_at INTEGER,
    bytes      BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS instances_by_version ON instances (version, status)
    WHERE version IS NOT NULL;
CREATE INDEX IF NOT EXISTS instances_with_pending_effects ON instances (outbox)
    WHERE outbox IS NOT NULL;
-- The effects of staged commits, applied a batch per transaction once the
-- commit has landed (see sqlite/outbox.rs).
CREATE TABLE IF NOT EXISTS outbox (
    instance_id TEXT NOT NULL,
    staging     INTEGER NOT NULL,
    seq         INTEGER NOT NULL,
    effect      TEXT NOT NULL,
    PRIMARY KEY (instance_id, staging, seq)
) WITHOUT ROWID;
-- How many instances have each status, kept by triggers (count_triggers!)
-- in the transaction that starts, changes or deletes an instance.
CREATE TABLE IF NOT EXISTS instance_counts (
    status    TEXT PRIMARY KEY NOT NULL,
    total     INTEGER NOT NULL
) WITHOUT ROWID;
"#,
    count_triggers!()
);

pub struct SqliteStore {
    /// The writer thread's queue: it owns the writing connection and
    /// commits every job waiting in the queue in one transaction.
    writer: SyncSender<Job>,
    /// Reads go here, so a long write (a bulk purge batch) never holds up
    /// a status query: in WAL mode readers and the writer do not block.
    reader: Mutex<Connection>,
    /// [`Store::counts`] reads here: it scans every instance.
    counter: Mutex<Connection>,
    /// Told of each group the writer commits, once one is set.
    observer: Observer,
}

/// A read-only connection to the database at `path`.
fn open_reader(path: &Path) -> anyhow::Result<Connection> {
    let reader = Connection::open(path)
        .with_context(|| format!("cannot open the database {}", path.display()))?;
    // Every write from the writer empties the reader's page cache; with
    // the file mapped, reading the pages again costs no system calls.
    reader
        .execute_batch(
            "PRAGMA busy_timeout = 5000; PRAGMA query_only = ON; PRAGMA mmap_size = 1073741824;",
        )
        .context("cannot configure SQLite")?;
    configure_statements(&reader)?;
    Ok(reader)
}

/// Where the writer finds its [`CommitObserver`], set after it started.
type Observer = Arc<OnceLock<Arc<dyn CommitObserver>>>;

impl SqliteStore {
    pub fn open(path: &Path) -> anyhow::Result<SqliteStore> {
        let connection = Connection::open(path)
            .with_context(|| format!("cannot open the database {}", path.display()))?;
        // Before anything writes to it (even the journal mode).
        refuse_foreign(&connection, path)?;
        connection
            .execute_batch(
                "PRAGMA journal_mode = WAL;
                 PRAGMA synchronous = FULL;
                 PRAGMA foreign_keys = ON;
                 PRAGMA busy_timeout = 5000;",
            )
            .context("cannot configure SQLite")?;
        configure_statements(&connection)?;
        let version: i64 = connection.query_row("PRAGMA user_version", [], |row| row.get(0))?;
        if version > SCHEMA_VERSION {
            anyhow::bail!(
                "the database {} has schema version {version}, newer than this host understands ({SCHEMA_VERSION}); use a newer reprise",
                path.display()
            );
        }
        // Each step is one transaction: a crash leaves the old version or
        // a complete new one. (Version 0 is a new file: `SCHEMA` below.)
        let upgrades = [
            // 2: the original input, for restarts.
            "ALTER TABLE instances ADD COLUMN original_input TEXT",
            // 3: instances pinned to component versions; older instances
            // have none and run on the current file.
            "ALTER TABLE instances ADD COLUMN version TEXT",
            // 4: whether a termination is queued, the history's length,
            // pending effects and the revision, kept on the row.
            "ALTER TABLE instances ADD COLUMN terminating INTEGER NOT NULL DEFAULT 0;
             UPDATE instances SET terminating = 1 WHERE instance_id IN
               (SELECT instance_id FROM inbox WHERE json_extract(message, '$.type') = 'Terminate');
             ALTER TABLE instances ADD COLUMN history_len INTEGER NOT NULL DEFAULT 0;
             UPDATE instances SET history_len = (SELECT COALESCE(MAX(h.seq) + 1, 0) FROM history h
               WHERE h.instance_id = instances.instance_id AND h.generation = instances.generation);
             ALTER TABLE instances ADD COLUMN outbox INTEGER;
             ALTER TABLE instances ADD COLUMN revision INTEGER NOT NULL DEFAULT 0",
            // 5: trace contexts; older instances are not traced.
            "ALTER TABLE instances ADD COLUMN trace TEXT",
            // 6: instances by status, counted once here and kept by
            // triggers from then on.
            concat!(
                "CREATE TABLE instance_counts (
                   status TEXT PRIMARY KEY NOT NULL, total INTEGER NOT NULL) WITHOUT ROWID;
                 INSERT INTO instance_counts SELECT status, count(*) FROM instances GROUP BY status;",
                count_triggers!()
            ),
            // 7: activities' attempt numbers; queued ones are first attempts.
            // (A file from before the activity queue has none: made as it was.)
            "CREATE TABLE IF NOT EXISTS activities (
               key INTEGER PRIMARY KEY AUTOINCREMENT, instance_id TEXT NOT NULL,
               generation INTEGER NOT NULL, task_id INTEGER NOT NULL, name TEXT NOT NULL,
               input TEXT NOT NULL, lease_until INTEGER NOT NULL DEFAULT 0,
               UNIQUE (instance_id, generation, task_id));
             ALTER TABLE activities ADD COLUMN attempt INTEGER NOT NULL DEFAULT 1",
            // 8: entities are not counted among the instances.
            concat!(
                "DROP TRIGGER count_inserted; DROP TRIGGER count_deleted; DROP TRIGGER count_changed;
                 DELETE FROM instance_counts;
                 INSERT INTO instance_counts SELECT status, count(*) FROM instances
                   WHERE instance_id NOT LIKE '@%' GROUP BY status;",
                count_triggers!()
            ),
            // 9: what names a lease taken in its commit.
            "ALTER TABLE activities ADD COLUMN leased_from INTEGER",
        ];
        for (to, change) in (2..).zip(upgrades) {
            if (1..to).contains(&version) {
                connection
                    .execute_batch(&format!(
                        "BEGIN IMMEDIATE; {change}; PRAGMA user_version = {to}; COMMIT;"
                    ))
                    .with_context(|| format!("cannot upgrade the schema to version {to}"))?;
            }
        }
        connection
            .execute_batch(SCHEMA)
            .context("cannot create the schema")?;
        connection.execute_batch(&format!("PRAGMA user_version = {SCHEMA_VERSION}"))?;
        let reader = open_reader(path)?;
        // Its own: counting every instance must not hold up episodes' reads.
        let counter = open_reader(path)?;
        let (writer, jobs) = std::sync::mpsc::sync_channel(WRITE_QUEUE);
        let observer = Observer::default();
        let told = Arc::clone(&observer);
        std::thread::Builder::new()
            .name("reprise-writer".into())
            .spawn(move || exit_if_it_dies(move || run_writer(connection, jobs, &told)))
            .context("cannot start the database writer")?;
        Ok(SqliteStore {
            writer,
            reader: Mutex::new(reader),
            counter: Mutex::new(counter),
            observer,
        })
    }

    /// Runs `work` on the writer and returns once its transaction has
    /// committed durably. `work` runs in a savepoint: if it fails, its
    /// writes are undone and the other jobs of the group commit anyway.
    fn write<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Connection) -> anyhow::Result<T> + Send + 'static,
    ) -> StoreResult<T> {
        let (reply, answer) = std::sync::mpsc::sync_channel(1);
        let job: Job = Box::new(move |connection: Result<&Connection, GroupFailure>| {
            let outcome = match connection {
                Ok(connection) => in_savepoint(connection, work).map_err(classified),
                Err(failure) => Err(failure.into_error("could not begin a transaction").into()),
            };
            Box::new(move |committed: Result<(), GroupFailure>| {
                let result = match committed {
                    Ok(()) => outcome,
                    Err(failure) => Err(failure.into_error("the commit failed").into()),
                };
                let _ = reply.send(result);
            })
        });
        let stopped = || StoreError::Fault(anyhow::anyhow!("the database writer has stopped"));
        self.writer.send(job).map_err(|_| stopped())?;
        answer.recv().map_err(|_| stopped())?
    }

    /// Runs `work` on the reader connection in one read transaction: it
    /// sees every committed write and waits for none (WAL).
    fn read<T>(&self, work: impl FnOnce(&Connection) -> anyhow::Result<T>) -> StoreResult<T> {
        read_on(&self.reader, work)
    }
}

/// Runs `work` on `connection` in one read transaction.
fn read_on<T>(
    connection: &Mutex<Connection>,
    work: impl FnOnce(&Connection) -> anyhow::Result<T>,
) -> StoreResult<T> {
    let mut connection = connection.lock().unwrap_or_else(|e| e.into_inner());
    let read = || {
        let transaction = connection.transaction_with_behavior(TransactionBehavior::Deferred)?;
        let value = work(&transaction)?;
        transaction.commit()?;
        Ok(value)
    };
    read().map_err(classified)
}

/// Why SQLite failed, when the cause lies outside the host (the disk, the
/// file, another process): the store then reports [`Unavailable`].
fn outside_cause(error: &rusqlite::Error) -> Option<&'static str> {
    use rusqlite::ErrorCode;
    Some(match error.sqlite_error_code()? {
        ErrorCode::DiskFull => "the disk is full",
        ErrorCode::ReadOnly => "the database file or its file system is read-only",
        ErrorCode::SystemIoFailure => "an I/O error",
        ErrorCode::CannotOpen => "the database file cannot be opened",
        ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => "another process holds the database",
        _ => return None,
    })
}

/// `error` as the store reports it: [`StoreError::Unavailable`] if SQLite
/// failed for a cause outside the host.
fn classified(error: anyhow::Error) -> StoreError {
    let outside = error
        .chain()
        .find_map(|cause| cause.downcast_ref::<rusqlite::Error>())
        .and_then(outside_cause);
    with_cause(error, outside).into()
}

/// `error`, marked [`Unavailable`] for `outside` cause if there is one.
fn with_cause(error: anyhow::Error, outside: Option<&str>) -> anyhow::Error {
    match outside {
        Some(cause) => error.context(Unavailable(cause.to_owned())),
        None => error,
    }
}

/// Why a group's transaction did not commit: every job in it gets a copy.
#[derive(Debug, Clone)]
struct GroupFailure {
    message: String,
    outside: Option<&'static str>,
}

impl GroupFailure {
    fn of(error: &rusqlite::Error) -> GroupFailure {
        GroupFailure {
            message: error.to_string(),
            outside: outside_cause(error),
        }
    }

    fn into_error(self, what: &str) -> anyhow::Error {
        with_cause(anyhow::anyhow!("{what}: {}", self.message), self.outside)
    }
}

/// Every statement is prepared once per connection and kept: a cache that
/// holds them all (rusqlite keeps 16 by default, fewer than the writer
/// uses), and plans that do not depend on bound values (with STAT4 compiled
/// in, SQLite would otherwise prepare some statements again on every new
/// binding).
fn configure_statements(connection: &Connection) -> anyhow::Result<()> {
    connection.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    connection
        .set_db_config(
            rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
            true,
        )
        .context("cannot configure SQLite")?;
    Ok(())
}

/// More than the distinct statements one connection runs.
const STATEMENT_CACHE: usize = 128;

/// The columns [`instance_from_row`] reads, in its order.
const INSTANCE_COLUMNS: &str =
    "instance_id, name, status, generation, input, output, custom_status,
    created_at, updated_at, parent_instance_id, parent_generation, parent_task_id, original_input,
    version, revision, trace";

fn instance_from_row(row: &rusqlite::Row) -> anyhow::Result<Instance> {
    let id: String = row.get(0)?;
    let status: String = row.get(2)?;
    let status = RuntimeStatus::parse(&status)
        .with_context(|| format!("instance {id} has an unknown status {status:?}"))?;
    let parent = match row.get::<_, Option<String>>(9)? {
        Some(instance_id) => Some(ParentTask {
            instance_id,
            generation: row.get(10)?,
            task_id: row.get::<_, i64>(11)? as u64,
        }),
        None => None,
    };
    let input: String = row.get(4)?;
    Ok(Instance {
        name: row.get(1)?,
        status,
        generation: row.get(3)?,
        // Rows from schema version 1 lack it.
        original_input: row
            .get::<_, Option<String>>(12)?
            .unwrap_or_else(|| input.clone()),
        input,
        output: row.get(5)?,
        custom_status: row.get(6)?,
        created_at: row.get::<_, i64>(7)? as Millis,
        updated_at: row.get::<_, i64>(8)? as Millis,
        parent,
        version: row.get(13)?,
        revision: row.get::<_, i64>(14)? as u64,
        trace: row.get(15)?,
        id,
    })
}

/// Jobs the writer takes into one transaction, at most.
const GROUP: usize = 256;
/// Jobs that may wait for the writer before writers block.
const WRITE_QUEUE: usize = 4096;

/// A write: runs on the writer's connection (or learns why the transaction
/// could not begin) and returns what to do once the group's commit has
/// succeeded or failed.
type Job = Box<dyn FnOnce(Result<&Connection, GroupFailure>) -> Finish + Send>;
type Finish = Box<dyn FnOnce(Result<(), GroupFailure>) + Send>;

/// Runs the writer; if it panics (a bug: jobs' own panics are caught in
/// their savepoints), ends the process with a clear line. Without its
/// writer the store can only fail every write; a restart recovers every
/// committed write and resumes the work, under a supervisor, by itself.
fn exit_if_it_dies(writer: impl FnOnce()) {
    if let Err(panic) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(writer)) {
        let what = panic
            .downcast_ref::<&str>()
            .map(|text| text.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        tracing::error!(
            "the database writer died ({what}); exiting, so that a supervisor restarts the host and it recovers"
        );
        std::process::exit(70);
    }
}

/// Tests only (debug builds): `REPRISE_TEST_WRITER_PANICS_AFTER=N` makes
/// the writer panic at its Nth group, to prove that the host then exits.
#[cfg(debug_assertions)]
fn injected_writer_panic(groups: u64) {
    static AFTER: std::sync::OnceLock<Option<u64>> = std::sync::OnceLock::new();
    let after = AFTER.get_or_init(|| {
        std::env::var("REPRISE_TEST_WRITER_PANICS_AFTER")
            .ok()?
            .parse()
            .ok()
    });
    if after.is_some_and(|after| groups >= after) {
        panic!("injected by REPRISE_TEST_WRITER_PANICS_AFTER at group {groups}");
    }
}

/// Group commit: takes every job waiting (up to [`GROUP`]), runs them in
/// one transaction, commits once, then answers each. Jobs that arrive
/// during a commit's fsync make up the next group.
fn run_writer(connection: Connection, jobs: Receiver<Job>, observer: &Observer) {
    // Counted for the tests' injected panic only.
    #[cfg(debug_assertions)]
    let mut groups: u64 = 0;
    while let Ok(first) = jobs.recv() {
        #[cfg(debug_assertions)]
        {
            groups += 1;
            injected_writer_panic(groups);
        }
        let mut group = vec![first];
        while group.len() < GROUP {
            match jobs.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        let began_at = Instant::now();
        let writes = group.len();
        let mut began = connection.execute_batch("BEGIN IMMEDIATE");
        if began.is_err() && !connection.is_autocommit() {
            // A transaction left open by an earlier failure: end it, retry.
            let _ = connection.execute_batch("ROLLBACK");
            began = connection.execute_batch("BEGIN IMMEDIATE");
        }
        let mut failure = began.err().map(|error| GroupFailure::of(&error));
        let mut finishes: Vec<Finish> = Vec::with_capacity(group.len());
        for job in group {
            if let Some(failure) = &failure {
                finishes.push(job(Err(failure.clone())));
                continue;
            }
            finishes.push(job(Ok(&connection)));
            if connection.is_autocommit() {
                // SQLite rolled the whole transaction back (a full disk, an
                // I/O error): nothing of the group stands, and the rest must
                // not run outside a transaction.
                failure = Some(GroupFailure {
                    message: "SQLite rolled the transaction back".to_owned(),
                    outside: Some("a full disk or an I/O error"),
                });
            }
        }
        let committed = match failure {
            Some(failure) => Err(failure),
            None => connection.execute_batch("COMMIT").map_err(|error| {
                if !connection.is_autocommit() {
                    let _ = connection.execute_batch("ROLLBACK");
                }
                GroupFailure::of(&error)
            }),
        };
        match &committed {
            Ok(()) => {
                if let Some(observer) = observer.get() {
                    observer.committed(writes, began_at.elapsed());
                }
            }
            Err(failure) => tracing::error!("a database transaction failed: {}", failure.message),
        }
        for finish in finishes {
            finish(committed.clone());
        }
    }
}

/// Runs `work` in a savepoint of the open transaction: kept if it returns
/// `Ok`, rolled back if it fails or panics.
fn in_savepoint<T>(
    connection: &Connection,
    work: impl FnOnce(&Connection) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    connection.prepare_cached("SAVEPOINT job")?.execute([])?;
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(connection)))
        .unwrap_or_else(|_| Err(anyhow::anyhow!("a database write panicked")));
    let undo = || {
        if let Err(error) = connection.execute_batch("ROLLBACK TO job; RELEASE job") {
            tracing::error!("cannot roll back a failed write: {error}");
        }
    };
    match outcome {
        Ok(value) => match connection
            .prepare_cached("RELEASE job")
            .and_then(|mut release| release.execute([]))
        {
            Ok(_) => Ok(value),
            Err(error) => {
                undo();
                Err(error.into())
            }
        },
        Err(error) => {
            // The job's own error is the one worth reporting.
            undo();
            Err(error)
        }
    }
}

fn select_instance(connection: &Connection, id: &str) -> anyhow::Result<Option<Instance>> {
    let mut statement = connection.prepare_cached(&format!(
        "SELECT {INSTANCE_COLUMNS} FROM instances WHERE instance_id = ?1"
    ))?;
    let mut rows = statement.query([id])?;
    rows.next()?.map(instance_from_row).transpose()
}

/// The SQL condition and parameters selecting the instances `filter` matches.
fn filter_clause(filter: &InstanceFilter) -> (String, Vec<rusqlite::types::Value>) {
    use rusqlite::types::Value;
    let mut conditions = vec![filter.kind.sql_condition().to_owned()];
    let mut values = Vec::new();
    if let Some(name) = &filter.name {
        values.push(Value::Text(name.clone()));
        conditions.push(format!("name = ?{}", values.len()));
    }
    if let Some(from) = filter.created_from {
        values.push(Value::Integer(from as i64));
        conditions.push(format!("created_at >= ?{}", values.len()));
    }
    if let Some(to) = filter.created_to {
        values.push(Value::Integer(to as i64));
        conditions.push(format!("created_at <= ?{}", values.len()));
    }
    if !filter.statuses.is_empty() {
        let mut slots = Vec::new();
        for status in &filter.statuses {
            values.push(Value::Text(status.as_str().to_owned()));
            slots.push(format!("?{}", values.len()));
        }
        conditions.push(format!("status IN ({})", slots.join(", ")));
    }
    if let Some(prefix) = &filter.id_prefix {
        // A range on the primary key, so a selective prefix reads only its
        // rows: IDs from the prefix up to the prefix followed by the highest
        // character (BINARY collation compares UTF-8 bytes).
        values.push(Value::Text(prefix.clone()));
        values.push(Value::Text(format!("{prefix}\u{10FFFF}")));
        let (low, high) = (values.len() - 1, values.len());
        conditions.push(format!("instance_id >= ?{low} AND instance_id < ?{high}"));
    }
    (conditions.join(" AND "), values)
}

/// The kept counts of instances by status (each status with any).
fn select_instance_counts(connection: &Connection) -> anyhow::Result<Vec<(RuntimeStatus, u64)>> {
    let mut statement =
        connection.prepare_cached("SELECT status, total FROM instance_counts WHERE total > 0")?;
    let mut rows = statement.query([])?;
    let mut counts = Vec::new();
    while let Some(row) = rows.next()? {
        let status: String = row.get(0)?;
        let status = RuntimeStatus::parse(&status)
            .with_context(|| format!("unknown status {status:?} in the database"))?;
        counts.push((status, row.get::<_, i64>(1)? as u64));
    }
    Ok(counts)
}

/// Starts a generation under `new.id` unless an unfinished instance holds
/// it, and applies its start message by `direct` or queues it.
fn start_generation(
    transaction: &Connection,
    new: &NewInstance,
    direct: Option<&DirectEpisode>,
) -> anyhow::Result<(StartOutcome, Applied)> {
    let outcome = insert_instance(transaction, new)?;
    if outcome != StartOutcome::Started {
        return Ok((outcome, Applied::Queued));
    }
    let applied = apply_or_queue(transaction, &new.id, &Message::Start, direct)?;
    Ok((outcome, applied))
}

/// Writes the row of a new generation under `new.id` (see
/// [`NewInstance::started`]) unless an unfinished instance holds it.
fn insert_instance(transaction: &Connection, new: &NewInstance) -> anyhow::Result<StartOutcome> {
    let existing = select_instance(transaction, &new.id)?;
    let (generation, revision) = match &existing {
        Some(instance) if !instance.status.is_terminal() => {
            return Ok(StartOutcome::Conflict(instance.status));
        }
        // A commit planned on the finished generation is stale now.
        Some(instance) => (instance.generation + 1, instance.revision + 1),
        None => (0, 0),
    };
    transaction
        .prepare_cached("DELETE FROM history WHERE instance_id = ?1")?
        .execute([&new.id])?;
    // The effects the last generation left pending stay pending.
    let pending: Option<i64> = transaction
        .prepare_cached("SELECT outbox FROM instances WHERE instance_id = ?1")?
        .query_row([&new.id], |row| row.get(0))
        .optional()?
        .flatten();
    // Deleted, not replaced: a replace would not tell the count triggers.
    transaction
        .prepare_cached("DELETE FROM instances WHERE instance_id = ?1")?
        .execute([&new.id])?;
    let parent = new.parent.as_ref();
    transaction
        .prepare_cached(
            "INSERT INTO instances
               (instance_id, name, status, generation, input, output, custom_status, created_at, updated_at,
                parent_instance_id, parent_generation, parent_task_id, original_input, version, outbox,
                revision, trace)
             VALUES (?1, ?2, ?3, ?4, ?5, NULL, NULL, ?6, ?6, ?7, ?8, ?9, ?5, ?10, ?11, ?12, ?13)",
        )?
        .execute(params![
            new.id,
            new.name,
            RuntimeStatus::Pending.as_str(),
            generation,
            new.input,
            new.now as i64,
            parent.map(|parent| &parent.instance_id),
            parent.map(|parent| parent.generation),
            parent.map(|parent| parent.task_id as i64),
            new.version,
            pending,
            revision as i64,
            new.trace,
        ])?;
    Ok(StartOutcome::Started)
}

fn select_history(connection: &Connection, id: &str) -> anyhow::Result<Vec<HistoryEntry>> {
    let mut statement = connection.prepare_cached(
        "SELECT h.entry FROM history h JOIN instances i
           ON i.instance_id = h.instance_id AND i.generation = h.generation
         WHERE h.instance_id = ?1 AND h.seq < i.history_len ORDER BY h.seq",
    )?;
    let rows = statement.query_map([id], |row| row.get::<_, String>(0))?;
    rows.map(|entry| {
        let entry = entry?;
        serde_json::from_str(&entry).with_context(|| {
            format!("instance {id} has a history entry this host cannot read: {entry}")
        })
    })
    .collect()
}

/// The instance, the length of its current generation's history, and
/// whether a staged commit's effects are pending: one read of its row.
fn select_work_row(
    connection: &Connection,
    id: &str,
) -> anyhow::Result<Option<(Instance, usize, bool)>> {
    let mut statement = connection.prepare_cached(&format!(
        "SELECT {INSTANCE_COLUMNS}, history_len, outbox IS NOT NULL FROM instances WHERE instance_id = ?1"
    ))?;
    let mut rows = statement.query([id])?;
    let Some(row) = rows.next()? else {
        return Ok(None);
    };
    let history_len: i64 = row.get(16)?;
    Ok(Some((
        instance_from_row(row)?,
        history_len as usize,
        row.get(17)?,
    )))
}

/// The oldest `limit` messages queued for `id`.
fn select_messages(
    connection: &Connection,
    id: &str,
    limit: usize,
) -> anyhow::Result<Vec<QueuedMessage>> {
    // A negative limit is none.
    let limit = i64::try_from(limit).unwrap_or(-1);
    query_messages(
        connection,
        "SELECT seq, message FROM inbox WHERE instance_id = ?1 ORDER BY seq LIMIT ?2",
        id,
        limit,
    )
}

/// The messages of `id` that `sql` selects (`seq, message`), given `id`
/// and `value` as its parameters.
fn query_messages(
    connection: &Connection,
    sql: &str,
    id: &str,
    value: i64,
) -> anyhow::Result<Vec<QueuedMessage>> {
    let mut statement = connection.prepare_cached(sql)?;
    let rows = statement.query_map(params![id, value], |row| {
        Ok((row.get::<_, i64>(0)?, row.get::<_, String>(1)?))
    })?;
    rows.map(|row| {
        let (seq, message) = row?;
        QueuedMessage::read(id, seq, &message)
    })
    .collect()
}

/// The messages queued for `id` after `seq` that act while it is
/// suspended, up to the first that ends the suspension; none if none does
/// (`WorkRead::max_messages`). The events held between them stay in the
/// database (which looks at each one's `type`).
fn select_beyond_held(
    connection: &Connection,
    id: &str,
    seq: i64,
) -> anyhow::Result<Vec<QueuedMessage>> {
    let kind = "json_extract(message, '$.type')";
    let sql = format!(
        "SELECT seq, message FROM inbox
         WHERE instance_id = ?1 AND seq > ?2 AND {kind} IN ('{}')
           AND seq <= (SELECT min(seq) FROM inbox
                        WHERE instance_id = ?1 AND seq > ?2 AND {kind} IN ('{}'))
         ORDER BY seq",
        Message::ACTING_WHILE_SUSPENDED.join("', '"),
        Message::ENDING_SUSPENSION.join("', '"),
    );
    query_messages(connection, &sql, id, seq)
}

fn insert_message(transaction: &Connection, id: &str, message: &Message) -> anyhow::Result<()> {
    transaction
        .prepare_cached("INSERT INTO inbox (instance_id, message) VALUES (?1, ?2)")?
        .execute(params![id, serde_json::to_string(message)?])?;
    if matches!(message, Message::Terminate { .. }) {
        transaction
            .prepare_cached("UPDATE instances SET terminating = 1 WHERE instance_id = ?1")?
            .execute([id])?;
    }
    Ok(())
}

/// Whether any message is queued for `id`.
fn has_messages(connection: &Connection, id: &str) -> anyhow::Result<bool> {
    Ok(connection
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM inbox WHERE instance_id = ?1)")?
        .query_row([id], |row| row.get(0))?)
}

/// Whether a termination is queued for `id` (the `terminating` flag,
/// kept with the inbox: set with the message, cleared when the instance
/// finishes, which consumes it).
fn terminating(connection: &Connection, id: &str) -> anyhow::Result<bool> {
    Ok(connection
        .prepare_cached("SELECT terminating FROM instances WHERE instance_id = ?1")?
        .query_row([id], |row| row.get(0))
        .optional()?
        .unwrap_or(false))
}

fn insert_history(
    transaction: &Connection,
    id: &str,
    generation: u32,
    first_seq: usize,
    entries: &[HistoryEntry],
) -> anyhow::Result<()> {
    let mut statement = transaction.prepare_cached(
        // Replacing what an abandoned staged commit may have left there.
        "INSERT OR REPLACE INTO history (instance_id, generation, seq, entry) VALUES (?1, ?2, ?3, ?4)",
    )?;
    for (offset, entry) in entries.iter().enumerate() {
        statement.execute(params![
            id,
            generation,
            (first_seq + offset) as i64,
            serde_json::to_string(entry)?
        ])?;
    }
    Ok(())
}

/// The tables of a Reprise database (and SQLite's own): those `SCHEMA`
/// creates; a table added there is added here.
const OUR_TABLES: [&str; 9] = [
    "instances",
    "history",
    "inbox",
    "timers",
    "activities",
    "components",
    "outbox",
    "instance_counts",
    "sqlite_sequence",
];

/// Refuses a file that is not a SQLite database, is corrupt, or is some
/// other application's database: the host never writes into those.
fn refuse_foreign(connection: &Connection, path: &Path) -> anyhow::Result<()> {
    let tables: Vec<String> = connection
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table'")
        .and_then(|mut statement| {
            statement
                .query_map([], |row| row.get(0))?
                .collect::<Result<_, _>>()
        })
        .with_context(|| {
            format!(
                "{} is not a Reprise database (not SQLite, or corrupt); it was left untouched",
                path.display()
            )
        })?;
    let foreign: Vec<&String> = tables
        .iter()
        .filter(|table| !OUR_TABLES.contains(&table.as_str()))
        .collect();
    anyhow::ensure!(
        foreign.is_empty(),
        "{} is another application's SQLite database (tables {foreign:?}), not a Reprise database; it was left untouched. Point --db at a new file",
        path.display()
    );
    Ok(())
}

/// Creates the row of entity `id` if `message` is for an entity and it
/// has none.
fn create_entity_row(transaction: &Connection, id: &str, message: &Message) -> anyhow::Result<()> {
    if !message.addresses_entity() {
        return Ok(());
    }
    let entity = EntityId::of_instance(id).with_context(|| {
        format!("a message for an entity was addressed to {id:?}, which is not an entity's ID")
    })?;
    if select_instance(transaction, id)?.is_none() {
        insert_instance(transaction, &NewInstance::entity(&entity, now_millis()))?;
    }
    Ok(())
}

/// Checks that `id` names a live instance with no termination queued.
fn check_deliverable(transaction: &Connection, id: &str) -> anyhow::Result<DeliveryOutcome> {
    let row = transaction
        .prepare_cached("SELECT status, terminating FROM instances WHERE instance_id = ?1")?
        .query_row([id], |row| {
            Ok((row.get::<_, String>(0)?, row.get::<_, bool>(1)?))
        })
        .optional()?;
    let Some((status, terminating)) = row else {
        return Ok(DeliveryOutcome::NotFound);
    };
    let status = RuntimeStatus::parse(&status)
        .with_context(|| format!("instance {id} has an unknown status {status:?}"))?;
    if status.is_terminal() {
        return Ok(DeliveryOutcome::Finished(status));
    }
    if terminating {
        return Ok(DeliveryOutcome::Terminating);
    }
    Ok(DeliveryOutcome::Accepted)
}

/// The writes an episode makes to other instances, in its transaction:
/// starting children, delivering sent events (unless staged: those are
/// pending effects), reporting to the parent, and terminating the children
/// of a terminated instance. Returns the instances that received messages.
fn deliver_outbox(transaction: &Connection, commit: &EpisodeCommit) -> anyhow::Result<Vec<String>> {
    let id = commit.updated.id.as_str();
    let mut effects = outbox::Effects::new(transaction, id);
    if commit.staging.is_none() {
        for child in &commit.children {
            effects.start_child(child)?;
        }
        for (target, name, payload) in &commit.sent_events {
            effects.send(target, name, payload, commit.updated.updated_at)?;
        }
        for (target, message) in &commit.messages {
            effects.deliver(target, message)?;
        }
    }
    let mut notify = effects.finish();
    if let Some((parent, message)) = commit.report_to_parent() {
        insert_message(transaction, &parent, &message)?;
        notify.push(parent);
    }
    if let Some(termination) = commit.terminates_children() {
        let children: Vec<String> = transaction
            .prepare_cached("SELECT instance_id FROM instances WHERE parent_instance_id = ?1")?
            .query_map([id], |row| row.get(0))?
            .collect::<Result<_, _>>()?;
        for child in children {
            if check_deliverable(transaction, &child)? == DeliveryOutcome::Accepted {
                insert_message(transaction, &child, &termination)?;
                notify.push(child);
            }
        }
    }
    Ok(notify)
}

/// Writes an episode's outcome, unless the instance changed since it was
/// read, or it finishes the instance with messages it has not seen.
fn apply_episode(
    transaction: &Connection,
    commit: &EpisodeCommit,
) -> anyhow::Result<CommitOutcome> {
    let id = commit.read.id.as_str();
    anyhow::ensure!(
        commit.updated.revision == commit.read.revision + 1,
        "instance {id}: a commit must move the revision by one (from {} to {})",
        commit.read.revision,
        commit.updated.revision
    );
    let row: Option<(i64, i64)> = transaction
        .prepare_cached("SELECT revision, history_len FROM instances WHERE instance_id = ?1")?
        .query_row([id], |row| Ok((row.get(0)?, row.get(1)?)))
        .optional()?;
    let existing = match row {
        Some((revision, len)) if revision == commit.read.revision as i64 => len as usize,
        _ => return Ok(CommitOutcome::Stale),
    };
    // What an episode consumes is named one by one: mostly the oldest
    // messages, but a suspended instance's resume may come from beyond the
    // events it holds (`WorkRead::max_messages`). Finishing, it must have
    // consumed all that is queued (each of which the delete below checks).
    if commit.updated.status.is_terminal() {
        let queued: i64 = transaction
            .prepare_cached("SELECT count(*) FROM inbox WHERE instance_id = ?1")?
            .query_row([id], |row| row.get(0))?;
        if queued as usize > commit.consumed.len() {
            return Ok(CommitOutcome::LateMessages);
        }
    }
    let updated = &commit.updated;
    // A staged commit's entries are written already, beyond the length.
    let staged = commit.staging.is_some();
    let history_len = match &commit.history {
        HistoryChange::Append(entries) => {
            if !staged {
                insert_history(transaction, id, updated.generation, existing, entries)?;
            }
            existing + entries.len()
        }
        HistoryChange::Replace(entries) => {
            // Staged only for a new generation: its rows stay.
            transaction
                .prepare_cached(
                    "DELETE FROM history WHERE instance_id = ?1 AND (generation != ?2 OR NOT ?3)",
                )?
                .execute(params![id, updated.generation, staged])?;
            if !staged {
                insert_history(transaction, id, updated.generation, 0, entries)?;
            }
            entries.len()
        }
    };
    let changed = transaction
        .prepare_cached(
            "UPDATE instances SET status = ?2, generation = ?3, input = ?4, output = ?5,
               custom_status = ?6, updated_at = ?7, version = ?8,
               terminating = terminating AND NOT ?9, history_len = ?10,
               outbox = COALESCE(?11, outbox), revision = ?12
             WHERE instance_id = ?1 AND revision = ?13",
        )?
        .execute(params![
            id,
            updated.status.as_str(),
            updated.generation,
            updated.input,
            updated.output,
            updated.custom_status,
            updated.updated_at as i64,
            updated.version,
            // A finished instance consumed every message it had, a
            // termination among them.
            updated.status.is_terminal(),
            history_len as i64,
            commit.staging.map(|staging| staging.token),
            updated.revision as i64,
            commit.read.revision as i64,
        ])?;
    anyhow::ensure!(
        changed == 1,
        "instance {id}: its revision changed during the commit"
    );
    if !commit.consumed.is_empty() {
        let consumed = serde_json::to_string(&commit.consumed)?;
        let deleted = transaction
            .prepare_cached(
                "DELETE FROM inbox WHERE instance_id = ?1
                 AND seq IN (SELECT value FROM json_each(?2))",
            )?
            .execute(params![id, consumed])?;
        anyhow::ensure!(
            deleted == commit.consumed.len(),
            "instance {id}: the episode consumed {} messages, but only {deleted} of them were queued",
            commit.consumed.len()
        );
    }
    // Timers and activities belong to a generation: those of a
    // generation that ended will never matter. (While one runs, every
    // other generation's were deleted when it ended.)
    let live_generation = if updated.status.is_terminal() {
        None
    } else {
        Some(updated.generation)
    };
    if live_generation != Some(commit.read.generation) {
        for table in ["timers", "activities"] {
            transaction
                .prepare_cached(&format!(
                    "DELETE FROM {table} WHERE instance_id = ?1 AND generation IS NOT ?2"
                ))?
                .execute(params![id, live_generation])?;
        }
    }
    let mut leased = Vec::new();
    if let Some(generation) = live_generation
        && !staged
    {
        let mut insert_timer = transaction.prepare_cached(
            "INSERT OR REPLACE INTO timers (instance_id, generation, task_id, fire_at) VALUES (?1, ?2, ?3, ?4)",
        )?;
        for (task_id, fire_at) in &commit.timers {
            insert_timer.execute(params![id, generation, *task_id as i64, *fire_at as i64])?;
        }
        leased = insert_activities(transaction, commit, generation)?;
    }
    if let Some(generation) = live_generation {
        let mut cancel = transaction.prepare_cached(
            "DELETE FROM timers WHERE instance_id = ?1 AND generation = ?2 AND task_id = ?3",
        )?;
        for task_id in &commit.cancelled_timers {
            cancel.execute(params![id, generation, *task_id as i64])?;
        }
    }
    for message in &commit.requeued {
        insert_message(transaction, id, message)?;
    }
    let mut notify = deliver_outbox(transaction, commit)?;
    if !commit.requeued.is_empty() {
        notify.push(id.to_owned());
    }
    // With one writer, no delivery can come between this check and the
    // delete: a later message creates the entity anew.
    if commit.removes_empty_entity && !has_messages(transaction, id)? {
        delete_instance(transaction, id)?;
    }
    Ok(CommitOutcome::Committed(FollowUp { notify, leased }))
}

/// Queues the episode's activities, the first `commit.lease.count` of them
/// leased; returns those. One already queued (the same task) is left as it
/// is, and not returned.
fn insert_activities(
    transaction: &Connection,
    commit: &EpisodeCommit,
    generation: u32,
) -> anyhow::Result<Vec<ActivityWork>> {
    let updated = &commit.updated;
    let mut insert = transaction.prepare_cached(
        "INSERT OR IGNORE INTO activities (instance_id, generation, task_id, name, input, lease_until, attempt, leased_from)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) RETURNING key",
    )?;
    let mut leased = Vec::new();
    for (index, activity) in commit.activities.iter().enumerate() {
        let (lease_until, leased_from) = if index < commit.lease.count {
            (commit.lease.until(), Some(commit.lease.from as i64))
        } else {
            (0, None)
        };
        let mut inserted = insert.query(params![
            updated.id,
            generation,
            activity.task_id as i64,
            activity.name,
            activity.input,
            lease_until as i64,
            activity.attempt,
            leased_from,
        ])?;
        let Some(row) = inserted.next()? else {
            continue;
        };
        if lease_until > 0 {
            leased.push(ActivityWork {
                key: row.get(0)?,
                instance_id: updated.id.clone(),
                generation,
                task_id: activity.task_id,
                name: activity.name.clone(),
                input: activity.input.clone(),
                attempt: activity.attempt,
                version: updated.version.clone(),
                trace: updated.trace.clone(),
            });
        }
    }
    Ok(leased)
}

/// Applies `direct` if the instance is exactly what it was planned on (see
/// [`DirectEpisode`]); `None` (nothing written) otherwise.
fn apply_direct(
    transaction: &Connection,
    direct: &DirectEpisode,
) -> anyhow::Result<Option<FollowUp>> {
    let read = &direct.commit.read;
    // Nothing queued, no effects pending, the history as long as planned on.
    let fits: bool = transaction
        .prepare_cached(
            "SELECT NOT EXISTS (SELECT 1 FROM inbox WHERE instance_id = ?1)
               AND outbox IS NULL AND history_len = ?2
             FROM instances WHERE instance_id = ?1",
        )?
        .query_row(params![&read.id, direct.history_len as i64], |row| {
            row.get(0)
        })
        .optional()?
        .unwrap_or(false);
    if !fits {
        return Ok(None);
    }
    // A row that differs from `read` is refused before anything is written.
    match apply_episode(transaction, &direct.commit)? {
        CommitOutcome::Committed(follow_up) => Ok(Some(follow_up)),
        CommitOutcome::Stale | CommitOutcome::LateMessages => Ok(None),
    }
}

/// Applies `message` to instance `id` by `direct` if it fits, else queues it.
fn apply_or_queue(
    transaction: &Connection,
    id: &str,
    message: &Message,
    direct: Option<&DirectEpisode>,
) -> anyhow::Result<Applied> {
    if let Some(direct) = direct
        && let Some(follow_up) = apply_direct(transaction, direct)?
    {
        return Ok(Applied::Directly(follow_up));
    }
    insert_message(transaction, id, message)?;
    Ok(Applied::Queued)
}

/// Deletes an instance and everything stored for it.
fn delete_instance(transaction: &Connection, id: &str) -> anyhow::Result<()> {
    for table in [
        "history",
        "inbox",
        "timers",
        "activities",
        "outbox",
        "instances",
    ] {
        transaction
            .prepare_cached(&format!("DELETE FROM {table} WHERE instance_id = ?1"))?
            .execute([id])?;
    }
    Ok(())
}

impl Store for SqliteStore {
    fn start_instance(
        &self,
        new: &NewInstance,
        direct: Option<DirectEpisode>,
    ) -> StoreResult<(StartOutcome, Applied)> {
        let new = new.clone();
        self.write(move |transaction| start_generation(transaction, &new, direct.as_ref()))
    }

    fn deliver(
        &self,
        id: &str,
        message: &Message,
        direct: Option<DirectEpisode>,
    ) -> StoreResult<(DeliveryOutcome, Applied)> {
        let (id, message) = (id.to_owned(), message.clone());
        self.write(move |transaction| {
            create_entity_row(transaction, &id, &message)?;
            let outcome = check_deliverable(transaction, &id)?;
            if outcome != DeliveryOutcome::Accepted {
                return Ok((outcome, Applied::Queued));
            }
            let applied = apply_or_queue(transaction, &id, &message, direct.as_ref())?;
            Ok((outcome, applied))
        })
    }

    fn instance(&self, id: &str) -> StoreResult<Option<Instance>> {
        self.read(|connection| select_instance(connection, id))
    }

    fn instance_with_history(
        &self,
        id: &str,
    ) -> StoreResult<Option<(Instance, Vec<HistoryEntry>)>> {
        // One read transaction: a continue-as-new cannot land in between.
        self.read(|connection| {
            let Some(instance) = select_instance(connection, id)? else {
                return Ok(None);
            };
            let history = select_history(connection, id)?;
            Ok(Some((instance, history)))
        })
    }

    fn purge(&self, id: &str) -> StoreResult<PurgeOutcome> {
        let id = id.to_owned();
        self.write(move |transaction| {
            let id = id.as_str();
            let Some(instance) = select_instance(transaction, id)? else {
                return Ok(PurgeOutcome::NotFound);
            };
            // Not while its last effects are pending (a moment after it
            // finished in a large step): they would be lost.
            if !instance.status.is_terminal() || outbox::pending(transaction, id)? {
                return Ok(PurgeOutcome::NotFinished(instance.status));
            }
            delete_instance(transaction, id)?;
            Ok(PurgeOutcome::Purged)
        })
    }

    fn query_instances(
        &self,
        filter: &InstanceFilter,
        after: Option<&PageCursor>,
        limit: usize,
    ) -> StoreResult<Vec<Instance>> {
        use rusqlite::types::Value;
        let (mut condition, mut values) = filter_clause(filter);
        if let Some(cursor) = after {
            values.push(Value::Integer(cursor.created_at as i64));
            values.push(Value::Text(cursor.instance_id.clone()));
            let (at, id) = (values.len() - 1, values.len());
            let beyond = match filter.order {
                PageOrder::OldestFirst => ">",
                PageOrder::NewestFirst => "<",
            };
            condition.push_str(&format!(
                " AND (created_at, instance_id) {beyond} (?{at}, ?{id})"
            ));
        }
        values.push(Value::Integer(limit as i64));
        let direction = match filter.order {
            PageOrder::OldestFirst => "ASC",
            PageOrder::NewestFirst => "DESC",
        };
        let sql = format!(
            "SELECT {INSTANCE_COLUMNS} FROM instances WHERE {condition}
             ORDER BY created_at {direction}, instance_id {direction} LIMIT ?{}",
            values.len()
        );
        self.read(|connection| {
            let mut statement = connection.prepare_cached(&sql)?;
            let mut rows = statement.query(rusqlite::params_from_iter(values))?;
            let mut instances = Vec::new();
            while let Some(row) = rows.next()? {
                instances.push(instance_from_row(row)?);
            }
            Ok(instances)
        })
    }

    fn count_instances(&self, filter: &InstanceFilter, cap: u64) -> StoreResult<u64> {
        use rusqlite::types::Value;
        let (condition, mut values) = filter_clause(filter);
        values.push(Value::Integer(cap.min(i64::MAX as u64) as i64));
        let sql = format!(
            "SELECT count(*) FROM (SELECT 1 FROM instances WHERE {condition} LIMIT ?{})",
            values.len()
        );
        read_on(&self.counter, |connection| {
            let count: i64 = connection
                .prepare_cached(&sql)?
                .query_row(rusqlite::params_from_iter(values), |row| row.get(0))?;
            Ok(count as u64)
        })
    }

    fn instance_counts(&self) -> StoreResult<Vec<(RuntimeStatus, u64)>> {
        self.read(select_instance_counts)
    }

    fn component_versions(&self) -> StoreResult<Vec<ComponentVersion>> {
        self.read(|connection| {
            let mut statement = connection.prepare_cached(
                "SELECT c.version, c.stored_at, c.retired_at,
                        (SELECT count(*) FROM instances i WHERE i.version = c.version
                           AND i.status IN ('Pending', 'Running', 'Suspended', 'ContinuedAsNew'))
                 FROM components c ORDER BY c.stored_at, c.version",
            )?;
            let versions = statement.query_map([], |row| {
                Ok(ComponentVersion {
                    version: row.get(0)?,
                    stored_at: row.get::<_, i64>(1)? as Millis,
                    retired_at: row.get::<_, Option<i64>>(2)?.map(|at| at as Millis),
                    live_instances: row.get::<_, i64>(3)? as u64,
                })
            })?;
            Ok(versions.collect::<Result<_, _>>()?)
        })
    }

    fn purge_finished(&self, filter: &InstanceFilter, limit: usize) -> StoreResult<usize> {
        use rusqlite::types::Value;
        let (condition, mut values) = filter_clause(filter);
        values.push(Value::Integer(limit as i64));
        let select = format!(
            "SELECT instance_id FROM instances
             WHERE {condition} AND status IN ('Completed', 'Failed', 'Terminated')
               AND outbox IS NULL
             ORDER BY created_at, instance_id LIMIT ?{}",
            values.len()
        );
        self.write(move |transaction| {
            let ids: Vec<String> = transaction
                .prepare_cached(&select)?
                .query_map(rusqlite::params_from_iter(values), |row| row.get(0))?
                .collect::<Result<_, _>>()?;
            for id in &ids {
                delete_instance(transaction, id)?;
            }
            Ok(ids.len())
        })
    }

    fn load_work(&self, id: &str, read: WorkRead) -> StoreResult<Option<WorkItem>> {
        // One read transaction, so instance, history and inbox agree.
        self.read(|connection| {
            let mut messages = select_messages(connection, id, read.max_messages)?;
            let Some((instance, history_len, effects_pending)) = select_work_row(connection, id)?
            else {
                anyhow::ensure!(
                    messages.is_empty(),
                    "instance {id} has queued messages but no instance row"
                );
                return Ok(None);
            };
            if messages.is_empty() && !effects_pending {
                return Ok(None);
            }
            if messages.len() == read.max_messages {
                if terminating(connection, id)? {
                    messages = select_messages(connection, id, usize::MAX)?;
                } else if held_until_resumed(&instance, &messages) {
                    let last = messages.last().map_or(0, |queued| queued.seq);
                    messages.extend(select_beyond_held(connection, id, last)?);
                }
            }
            let history = if read.history {
                select_history(connection, id)?
            } else {
                Vec::new()
            };
            Ok(Some(WorkItem {
                instance,
                history,
                history_len,
                messages,
                effects_pending,
            }))
        })
    }

    fn commit_episode(&self, commit: &EpisodeCommit) -> StoreResult<CommitOutcome> {
        let commit = commit.clone();
        self.write(move |transaction| apply_episode(transaction, &commit))
    }

    fn fire_due_timers(&self, now: Millis) -> StoreResult<Vec<String>> {
        self.write(move |transaction| {
            let due: Vec<(String, u32, i64, i64)> = transaction
                .prepare_cached(
                    "SELECT instance_id, generation, task_id, fire_at FROM timers
                     WHERE fire_at <= ?1 ORDER BY fire_at LIMIT 1000",
                )?
                .query_map([now as i64], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)))?
                .collect::<Result<_, _>>()?;
            let mut instances = Vec::new();
            for (instance_id, generation, task_id, fire_at) in due {
                let message = Message::TimerFired {
                    generation,
                    id: task_id as u64,
                    fire_at: fire_at as Millis,
                };
                insert_message(transaction, &instance_id, &message)?;
                transaction
                    .prepare_cached(
                        "DELETE FROM timers WHERE instance_id = ?1 AND generation = ?2 AND task_id = ?3",
                    )?
                    .execute(params![instance_id, generation, task_id])?;
                instances.push(instance_id);
            }
            instances.sort();
            instances.dedup();
            Ok(instances)
        })
    }

    fn next_timer_due(&self) -> StoreResult<Option<Millis>> {
        self.read(|connection| {
            let due: Option<i64> = connection
                .prepare_cached("SELECT MIN(fire_at) FROM timers")?
                .query_row([], |row| row.get(0))?;
            Ok(due.map(|due| due as Millis))
        })
    }

    fn claim_activities(
        &self,
        now: Millis,
        lease: Millis,
        limit: usize,
    ) -> StoreResult<Vec<ActivityWork>> {
        self.write(move |transaction| {
            let mut claimed: Vec<ActivityWork> = transaction
                .prepare_cached(
                    "UPDATE activities SET lease_until = ?2, leased_from = NULL
                     WHERE key IN (SELECT key FROM activities WHERE lease_until <= ?1 ORDER BY key LIMIT ?3)
                     RETURNING key, instance_id, generation, task_id, name, input,
                       (SELECT version FROM instances i WHERE i.instance_id = activities.instance_id),
                       (SELECT trace FROM instances i WHERE i.instance_id = activities.instance_id),
                       attempt",
                )?
                .query_map(params![now as i64, (now + lease) as i64, limit as i64], |row| {
                    Ok(ActivityWork {
                        key: row.get(0)?,
                        instance_id: row.get(1)?,
                        generation: row.get(2)?,
                        task_id: row.get::<_, i64>(3)? as u64,
                        name: row.get(4)?,
                        input: row.get(5)?,
                        version: row.get(6)?,
                        trace: row.get(7)?,
                        attempt: row.get(8)?,
                    })
                })?
                .collect::<Result<_, _>>()?;
            // RETURNING gives no order; run the oldest first.
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
        let work = work.clone();
        self.write(move |transaction| {
            let removed = transaction
                .prepare_cached("DELETE FROM activities WHERE key = ?1")?
                .execute([work.key])?;
            if removed == 0 {
                return Ok(None);
            }
            let message = Message::ActivityDone {
                generation: work.generation,
                id: work.task_id,
                result,
            };
            let applied =
                apply_or_queue(transaction, &work.instance_id, &message, direct.as_ref())?;
            Ok(Some(applied))
        })
    }

    fn release_activity_leases(&self) -> StoreResult<usize> {
        self.write(move |transaction| {
            Ok(transaction.execute(
                "UPDATE activities SET lease_until = 0 WHERE lease_until > 0",
                [],
            )?)
        })
    }

    fn release_lost_leases(&self, leased: &LeasedActivities) -> StoreResult<usize> {
        let leased = leased.clone();
        self.write(move |transaction| {
            let mut release = transaction.prepare_cached(
                "UPDATE activities SET lease_until = 0, leased_from = NULL
                  WHERE instance_id = ?1 AND generation = ?2 AND task_id = ?3 AND leased_from = ?4",
            )?;
            let mut released = 0;
            for task_id in &leased.task_ids {
                released += release.execute(params![
                    leased.instance_id,
                    leased.generation,
                    *task_id as i64,
                    leased.from as i64
                ])?;
            }
            Ok(released)
        })
    }

    fn record_components(
        &self,
        added: &[(String, Vec<u8>)],
        current: &[String],
        now: Millis,
    ) -> StoreResult<()> {
        let (added, current) = (added.to_vec(), current.to_vec());
        self.write(move |transaction| {
            let mut exists =
                transaction.prepare_cached("SELECT 1 FROM components WHERE version = ?1")?;
            let mut insert = transaction.prepare_cached(
                "INSERT INTO components (version, stored_at, bytes) VALUES (?1, ?2, ?3)",
            )?;
            for (version, bytes) in &added {
                if !exists.exists([version])? {
                    insert.execute(params![version, now as i64, bytes])?;
                }
            }
            // Only rows whose state changes are written (see the schema).
            let served: Vec<String> = transaction
                .prepare_cached("SELECT version FROM components WHERE retired_at IS NULL")?
                .query_map([], |row| row.get(0))?
                .collect::<Result<_, _>>()?;
            let mut retire = transaction
                .prepare_cached("UPDATE components SET retired_at = ?2 WHERE version = ?1")?;
            for version in served.iter().filter(|version| !current.contains(version)) {
                retire.execute(params![version, now as i64])?;
            }
            let mut serve = transaction.prepare_cached(
                "UPDATE components SET retired_at = NULL
                 WHERE version = ?1 AND retired_at IS NOT NULL",
            )?;
            for version in &current {
                serve.execute([version])?;
            }
            Ok(())
        })
    }

    fn component(&self, version: &str) -> StoreResult<Option<Vec<u8>>> {
        self.read(|connection| {
            Ok(connection
                .prepare_cached("SELECT bytes FROM components WHERE version = ?1")?
                .query_row([version], |row| row.get(0))
                .optional()?)
        })
    }

    fn collect_components(&self, retired_before: Millis) -> StoreResult<Vec<String>> {
        self.write(move |transaction| {
            let versions = transaction
                .prepare_cached(
                    "DELETE FROM components
                     WHERE retired_at IS NOT NULL AND retired_at <= ?1
                       AND NOT EXISTS (
                         SELECT 1 FROM instances
                         WHERE instances.version = components.version
                           AND status IN ('Pending', 'Running', 'Suspended', 'Failed'))
                     RETURNING version",
                )?
                .query_map([retired_before as i64], |row| row.get(0))?
                .collect::<Result<_, _>>()?;
            Ok(versions)
        })
    }

    fn counts(&self, now: Millis) -> StoreResult<StoreCounts> {
        read_on(&self.counter, |connection| {
            let mut counts = StoreCounts {
                instances: select_instance_counts(connection)?,
                ..StoreCounts::default()
            };
            let queues: [i64; 4] = connection
                .prepare_cached(
                    "SELECT (SELECT count(*) FROM inbox), (SELECT count(*) FROM timers),
                            (SELECT count(*) FROM activities WHERE lease_until <= ?1),
                            (SELECT count(*) FROM activities WHERE lease_until > ?1)",
                )?
                .query_row([now as i64], |row| {
                    Ok([row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?])
                })?;
            let [messages, timers, waiting, leased] = queues.map(|count| count as u64);
            counts.messages = messages;
            counts.timers = timers;
            counts.activities_waiting = waiting;
            counts.activities_leased = leased;
            Ok(counts)
        })
    }

    fn observe_commits(&self, observer: Arc<dyn CommitObserver>) {
        let _ = self.observer.set(observer);
    }

    fn queued_messages(&self, id: &str) -> StoreResult<Vec<i64>> {
        self.read(|connection| {
            Ok(connection
                .prepare_cached("SELECT seq FROM inbox WHERE instance_id = ?1 ORDER BY seq")?
                .query_map([id], |row| row.get(0))?
                .collect::<Result<_, _>>()?)
        })
    }

    fn stage_history(
        &self,
        id: &str,
        generation: u32,
        first_seq: usize,
        entries: Vec<HistoryEntry>,
    ) -> StoreResult<()> {
        let id = id.to_owned();
        // Beyond the recorded length (or in a generation not reached yet):
        // invisible until the staged commit lands.
        self.write(move |transaction| {
            let current = transaction
                .query_row(
                    "SELECT generation, history_len FROM instances WHERE instance_id = ?1",
                    params![id],
                    |row| Ok((row.get::<_, u32>(0)?, row.get::<_, i64>(1)? as usize)),
                )
                .optional()?;
            let writable = stageable(generation, first_seq, entries.len(), current);
            let first = first_seq + writable.start;
            insert_history(transaction, &id, generation, first, &entries[writable])
        })
    }

    fn stage_effects(
        &self,
        id: &str,
        token: i64,
        first: usize,
        effects: Vec<Effect>,
    ) -> StoreResult<()> {
        let id = id.to_owned();
        self.write(move |transaction| {
            outbox::stage_effects(transaction, &id, token, first, effects)
        })
    }

    fn apply_pending_effects(&self, id: &str, limit: usize) -> StoreResult<Option<FollowUp>> {
        let id = id.to_owned();
        self.write(move |transaction| outbox::apply_pending(transaction, &id, limit))
    }

    fn instances_with_messages(&self) -> StoreResult<Vec<String>> {
        self.read(|connection| {
            let mut statement = connection.prepare_cached(
                "SELECT instance_id FROM inbox
                 UNION SELECT instance_id FROM instances WHERE outbox IS NOT NULL
                 ORDER BY instance_id",
            )?;
            let ids = statement.query_map([], |row| row.get(0))?;
            Ok(ids.collect::<Result<_, _>>()?)
        })
    }
}

mod outbox;
#[cfg(test)]
mod tests;
