//! The tables, created and upgraded by the hosts themselves: the first
//! host to start on an empty database creates them; hosts starting at once
//! take turns (an advisory lock), so each sees a complete schema.

use anyhow::Context as _;
use deadpool_postgres::Client;

/// Bumped when the schema changes; a host refuses a database from the
/// future.
pub(crate) const VERSION: i32 = 7;

/// The advisory lock key migrations hold ("Reprise" in ASCII).
const MIGRATION_LOCK: i64 = 0x0052_6570_7269_7365;

/// IDs compare as bytes (`COLLATE "C"`), as SQLite's do: pages and ID
/// prefixes do not depend on the database's locale.
const SCHEMA: &str = r#"
CREATE TABLE instances (
    instance_id        TEXT COLLATE "C" PRIMARY KEY,
    name               TEXT NOT NULL,
    status             TEXT NOT NULL,
    generation         INTEGER NOT NULL,
    input              TEXT NOT NULL,
    output             TEXT,
    custom_status      TEXT,
    created_at         BIGINT NOT NULL,
    updated_at         BIGINT NOT NULL,
    parent_instance_id TEXT COLLATE "C",
    parent_generation  INTEGER,
    parent_task_id     BIGINT,
    original_input     TEXT NOT NULL,
    version            TEXT,
    -- A termination is queued: nothing more is accepted.
    terminating        BOOLEAN NOT NULL DEFAULT FALSE,
    -- Entries in the current generation's history; rows beyond are staged.
    history_len        INTEGER NOT NULL DEFAULT 0,
    -- The token of a staged commit whose effects are pending (outbox).
    outbox             BIGINT,
    -- Bumped by every commit: its fencing token.
    revision           BIGINT NOT NULL DEFAULT 0,
    -- The host that runs its episodes (hosts.host_id), while that host
    -- is alive; see hosts.rs.
    owner              TEXT,
    -- The instance's trace context, if traced (the host's format).
    trace              TEXT
);
CREATE INDEX instances_by_created_time ON instances (created_at, instance_id);
CREATE INDEX instances_by_parent ON instances (parent_instance_id)
    WHERE parent_instance_id IS NOT NULL;
CREATE INDEX instances_by_version ON instances (version, status) WHERE version IS NOT NULL;
CREATE INDEX instances_with_pending_effects ON instances (outbox) WHERE outbox IS NOT NULL;
CREATE TABLE history (
    instance_id TEXT COLLATE "C" NOT NULL,
    generation  INTEGER NOT NULL,
    seq         INTEGER NOT NULL,
    entry       TEXT NOT NULL,
    PRIMARY KEY (instance_id, generation, seq)
);
-- Sequence numbers are handed out at insert, not at commit: they order
-- one sender's messages, not concurrent transactions (see the contract).
CREATE TABLE inbox (
    seq         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    instance_id TEXT COLLATE "C" NOT NULL,
    message     TEXT NOT NULL
);
CREATE INDEX inbox_by_instance ON inbox (instance_id, seq);
CREATE TABLE timers (
    instance_id TEXT COLLATE "C" NOT NULL,
    generation  INTEGER NOT NULL,
    task_id     BIGINT NOT NULL,
    fire_at     BIGINT NOT NULL,
    PRIMARY KEY (instance_id, generation, task_id)
);
CREATE INDEX timers_by_due_time ON timers (fire_at);
CREATE TABLE activities (
    key         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    instance_id TEXT COLLATE "C" NOT NULL,
    generation  INTEGER NOT NULL,
    task_id     BIGINT NOT NULL,
    name        TEXT NOT NULL,
    input       TEXT NOT NULL,
    lease_until BIGINT NOT NULL DEFAULT 0,
    -- The host that holds the lease: a dead host's lease is void.
    lease_owner TEXT,
    attempt     INTEGER NOT NULL DEFAULT 1,
    -- For a lease taken by the commit that inserted the activity, when
    -- that commit's lease began (the host's clock): what names it, should
    -- the commit's outcome be unknown (release_lost_leases).
    leased_from BIGINT,
    UNIQUE (instance_id, generation, task_id)
);
CREATE INDEX activities_by_lease ON activities (lease_until, key);
CREATE TABLE components (
    version    TEXT PRIMARY KEY,
    stored_at  BIGINT NOT NULL,
    retired_at BIGINT,
    bytes      BYTEA NOT NULL
);
-- Each run of a host, alive while alive_until (the database's clock, in
-- milliseconds) lies ahead.
CREATE TABLE hosts (
    host_id     TEXT PRIMARY KEY,
    started_at  BIGINT NOT NULL,
    alive_until BIGINT NOT NULL,
    -- Where it serves (machine and address): one run at a time can.
    seat        TEXT
);
-- The component versions each host serves: a version is retired once no
-- live host serves it.
CREATE TABLE served (
    host_id TEXT NOT NULL REFERENCES hosts ON DELETE CASCADE,
    version TEXT NOT NULL,
    PRIMARY KEY (host_id, version)
);
CREATE TABLE outbox (
    instance_id TEXT COLLATE "C" NOT NULL,
    staging     BIGINT NOT NULL,
    seq         INTEGER NOT NULL,
    effect      TEXT NOT NULL,
    PRIMARY KEY (instance_id, staging, seq)
);
"#;

/// How many instances have each status. The trigger appends each change
/// (+1 or -1 for a status) to `instance_count_changes`, a table with no
/// index that no two transactions ever update a row of: cheap, and never
/// a wait. `counts.rs` folds the changes into `instance_counts` now and
/// then; a count is the two summed.
const INSTANCE_COUNTS: &str = r#"
CREATE TABLE instance_counts (
    status TEXT PRIMARY KEY,
    total  BIGINT NOT NULL
);
CREATE TABLE instance_count_changes (
    status TEXT NOT NULL,
    change INTEGER NOT NULL
);
CREATE FUNCTION reprise_count_instances() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RETURN NULL;
END
$$;
CREATE TRIGGER count_inserted_or_deleted AFTER INSERT OR DELETE ON instances
    FOR EACH ROW EXECUTE FUNCTION reprise_count_instances();
CREATE TRIGGER count_changed AFTER UPDATE OF status ON instances
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION reprise_count_instances();
"#;

/// What the count trigger does: counts orchestrations (an entity's ID
/// begins with `@`). Replaces the function `INSTANCE_COUNTS` creates.
const COUNT_ORCHESTRATIONS: &str = r#"
CREATE OR REPLACE FUNCTION reprise_count_instances() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        IF NEW.instance_id NOT LIKE '@%' THEN
            INSERT INTO instance_count_changes VALUES (NEW.status, 1);
        END IF;
    ELSIF TG_OP = 'DELETE' THEN
        IF OLD.instance_id NOT LIKE '@%' THEN
            INSERT INTO instance_count_changes VALUES (OLD.status, -1);
        END IF;
    ELSIF NEW.instance_id NOT LIKE '@%' THEN
        INSERT INTO instance_count_changes VALUES (OLD.status, -1), (NEW.status, 1);
    END IF;
    RETURN NULL;
END
$$;
"#;

/// The changes from each version to the next: `UPGRADES[n]` takes
/// version `n + 1` to `n + 2`, one batch after another.
const UPGRADES: [&[&str]; 6] = [
    // 2: trace contexts; older instances are not traced.
    &["ALTER TABLE instances ADD COLUMN trace TEXT"],
    // 3: instances by status, counted once here and kept from then on.
    &[
        INSTANCE_COUNTS,
        COUNT_ORCHESTRATIONS,
        "INSERT INTO instance_counts SELECT status, count(*) FROM instances GROUP BY status",
    ],
    // 4: activities' attempt numbers; queued ones are first attempts.
    &["ALTER TABLE activities ADD COLUMN attempt INTEGER NOT NULL DEFAULT 1"],
    // 5: entities are not counted among the instances (none were stored
    // before: nothing to recount).
    &[COUNT_ORCHESTRATIONS],
    // 6: where each host serves; older runs have no seat.
    &["ALTER TABLE hosts ADD COLUMN seat TEXT"],
    // 7: what names a lease taken in its commit; older leases have nothing.
    &["ALTER TABLE activities ADD COLUMN leased_from BIGINT"],
];

/// The schema version the database has now.
pub(crate) async fn version(pool: &deadpool_postgres::Pool) -> anyhow::Result<i32> {
    let client = pool.get().await?;
    let row = crate::rows::query(&client, "SELECT version FROM reprise_schema", &[]).await?;
    let version = row.first().context("no schema version recorded")?.get(0);
    Ok(version)
}

/// Upgrades a schema of version `from` to [`VERSION`], in the caller's
/// transaction (under the migration lock).
async fn upgrade(
    transaction: &deadpool_postgres::Transaction<'_>,
    from: i32,
) -> anyhow::Result<()> {
    for (to, changes) in (2..).zip(UPGRADES) {
        if from < to {
            for change in changes {
                transaction
                    .batch_execute(change)
                    .await
                    .with_context(|| format!("cannot upgrade the schema to version {to}"))?;
            }
        }
    }
    if from < VERSION {
        transaction
            .execute("UPDATE reprise_schema SET version = $1", &[&VERSION])
            .await?;
    }
    Ok(())
}

/// Creates the schema if the database has none, or checks its version.
pub(crate) async fn migrate(client: &mut Client) -> anyhow::Result<()> {
    let transaction = client.transaction().await?;
    transaction
        .execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await
        .context("cannot take the migration lock")?;
    transaction
        .batch_execute("CREATE TABLE IF NOT EXISTS reprise_schema (version INTEGER NOT NULL)")
        .await?;
    let found: Option<i32> = transaction
        .query_opt("SELECT version FROM reprise_schema", &[])
        .await?
        .map(|row| row.get(0));
    match found {
        None => {
            for part in [SCHEMA, INSTANCE_COUNTS, COUNT_ORCHESTRATIONS] {
                transaction
                    .batch_execute(part)
                    .await
                    .context("cannot create the schema")?;
            }
            transaction
                .execute(
                    "INSERT INTO reprise_schema (version) VALUES ($1)",
                    &[&VERSION],
                )
                .await?;
        }
        Some(version) if version > VERSION => anyhow::bail!(
            "the database has schema version {version}, newer than this host understands ({VERSION}); use a newer reprise"
        ),
        Some(version) => upgrade(&transaction, version).await?,
    }
    transaction.commit().await?;
    Ok(())
}
