//! Writes inside one transaction: starts, deliveries, episode commits.
//!
//! Locking (READ COMMITTED): whatever decides on an instance's row locks
//! it first, in a statement of its own, and reads anything else (its
//! inbox) in later statements, which see every commit made before the
//! lock was granted. A commit locks its own row `FOR UPDATE`; a delivery
//! from the API locks its target `FOR SHARE` (`FOR UPDATE` when it may
//! change it), so a finishing commit and a delivery are ordered: either
//! the delivery sees the instance finished and is refused, or the commit
//! sees the message and is refused as `LateMessages`.

use anyhow::Context as _;
use deadpool_postgres::Transaction;
use reprise_core::entity::EntityId;
use reprise_core::model::{HistoryEntry, Message, RuntimeStatus, now_millis};
use reprise_core::store::{
    ActivityWork, Applied, CommitOutcome, DeliveryOutcome, DirectEpisode, EpisodeCommit, FollowUp,
    HistoryChange, NewInstance, StartOutcome,
};

use crate::effects::Effects;
use crate::hosts::DB_NOW;
use crate::rows::{self, FINISHED};

/// Whether instance `$1` has a message queued, as a boolean expression.
///
/// Asked as the first message in the index's order, not as an `EXISTS`:
/// for an `EXISTS` the planner weighs reading the table until a first
/// match, and a connection's cached plan made while the inbox was young
/// (empty, no statistics yet) reads the whole inbox on every call, which
/// its churn (every message inserted, then deleted) makes long. The first
/// in `seq` order comes from `inbox_by_instance` whatever the table looks
/// like when planned.
pub(crate) const QUEUED: &str =
    "(SELECT seq FROM inbox WHERE instance_id = $1 ORDER BY seq LIMIT 1) IS NOT NULL";
/// Whether instance `$1` has a message queued that is not one of `$2`
/// (read the way [`QUEUED`] is, for the same reason).
pub(crate) const QUEUED_UNREAD: &str = "(SELECT seq FROM inbox WHERE instance_id = $1 AND seq <> ALL($2) \
     ORDER BY seq LIMIT 1) IS NOT NULL";

/// Starts a generation under `new.id` unless an unfinished instance holds
/// it, and applies its start message by `direct` or queues it.
pub(crate) async fn start_generation(
    transaction: &Transaction<'_>,
    me: &str,
    new: &NewInstance,
    direct: Option<&DirectEpisode>,
) -> anyhow::Result<(StartOutcome, Applied)> {
    let fresh = direct.filter(|direct| planned_on_a_fresh_row(direct));
    if let Some(direct) = fresh
        && let Some(follow_up) = insert_started(transaction, me, direct).await?
    {
        return Ok((StartOutcome::Started, Applied::Directly(follow_up)));
    }
    let outcome = insert_instance(transaction, me, new).await?;
    if outcome != StartOutcome::Started {
        return Ok((outcome, Applied::Queued));
    }
    // A plan on a fresh row that `insert_started` refused fits no row the
    // upsert leaves (another generation, messages queued, or this host
    // fenced): it is not tried again.
    let direct = direct.filter(|_| fresh.is_none());
    let applied = apply_or_queue(transaction, me, &new.id, &Message::Start, direct).await?;
    Ok((outcome, applied))
}

/// Whether `direct` was planned on the row a fresh ID's start writes
/// (generation 0, revision 0, no history), and is not staged.
fn planned_on_a_fresh_row(direct: &DirectEpisode) -> bool {
    let read = &direct.commit.read;
    read.generation == 0
        && read.revision == 0
        && direct.history_len == 0
        && direct.commit.staging.is_none()
}

/// Writes a fresh ID's row as the first episode `direct` leaves it, and
/// the episode's other writes: a start applied directly in one insert,
/// with no lock to take and nothing to read back. `None` (nothing written)
/// if the ID has a row (the caller then starts it as usual), messages
/// queued (a purged instance's, say), or `me`'s lease has expired
/// (fencing). `direct` is [`planned_on_a_fresh_row`].
async fn insert_started(
    transaction: &Transaction<'_>,
    me: &str,
    direct: &DirectEpisode,
) -> anyhow::Result<Option<FollowUp>> {
    let commit = &direct.commit;
    let updated = &commit.updated;
    let history_len = match &commit.history {
        HistoryChange::Append(entries) | HistoryChange::Replace(entries) => entries.len(),
    };
    let parent = updated.parent.as_ref();
    // Fenced as any commit: only while this host's lease lasts.
    let sql = format!(
        "INSERT INTO instances
           (instance_id, name, status, generation, input, output, custom_status, created_at,
            updated_at, parent_instance_id, parent_generation, parent_task_id, original_input,
            version, owner, history_len, revision, trace)
         SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18
          WHERE NOT {QUEUED}
            AND EXISTS (SELECT 1 FROM hosts WHERE host_id = $15 AND alive_until > {DB_NOW})
         ON CONFLICT (instance_id) DO NOTHING
         RETURNING 1"
    );
    let inserted = rows::query_opt(
        transaction,
        &sql,
        &[
            &updated.id,
            &updated.name,
            &updated.status.as_str(),
            &(updated.generation as i32),
            &updated.input,
            &updated.output,
            &updated.custom_status,
            &(updated.created_at as i64),
            &(updated.updated_at as i64),
            &parent.map(|parent| parent.instance_id.as_str()),
            &parent.map(|parent| parent.generation as i32),
            &parent.map(|parent| parent.task_id as i64),
            &updated.original_input,
            &updated.version,
            &me,
            &(history_len as i32),
            &(updated.revision as i64),
            &updated.trace,
        ],
    )
    .await?;
    if inserted.is_none() {
        return Ok(None);
    }
    // Boxed: an episode may start children, which is a start again.
    match Box::pin(write_episode(
        transaction,
        me,
        commit,
        0,
        RowWrite::Inserted,
    ))
    .await?
    {
        CommitOutcome::Committed(follow_up) => Ok(Some(follow_up)),
        CommitOutcome::Stale | CommitOutcome::LateMessages => {
            unreachable!("writing an episode only commits")
        }
    }
}

/// Writes the row of a new generation under `new.id`, owned by host `me`,
/// unless an unfinished instance holds it: one upsert, so concurrent
/// starts of one ID (on any number of hosts) give one `Started` and
/// `Conflict`s, never an error.
pub(crate) async fn insert_instance(
    transaction: &Transaction<'_>,
    me: &str,
    new: &NewInstance,
) -> anyhow::Result<StartOutcome> {
    let statement = transaction
        .prepare_cached(&format!(
            "INSERT INTO instances AS i
               (instance_id, name, status, generation, input, created_at, updated_at,
                parent_instance_id, parent_generation, parent_task_id, original_input, version,
                owner, trace)
             VALUES ($1, $2, 'Pending', 0, $3, $4, $4, $5, $6, $7, $3, $8, $9, $10)
             ON CONFLICT (instance_id) DO UPDATE SET
               name = EXCLUDED.name, status = EXCLUDED.status, generation = i.generation + 1,
               input = EXCLUDED.input, output = NULL, custom_status = NULL,
               created_at = EXCLUDED.created_at, updated_at = EXCLUDED.updated_at,
               parent_instance_id = EXCLUDED.parent_instance_id,
               parent_generation = EXCLUDED.parent_generation,
               parent_task_id = EXCLUDED.parent_task_id,
               original_input = EXCLUDED.original_input, version = EXCLUDED.version,
               terminating = FALSE, history_len = 0, revision = i.revision + 1,
               owner = EXCLUDED.owner, trace = EXCLUDED.trace
             WHERE i.status IN {FINISHED}
             RETURNING generation"
        ))
        .await?;
    let parent = new.parent.as_ref();
    let started = transaction
        .query_opt(
            &statement,
            &[
                &new.id,
                &new.name,
                &new.input,
                &(new.now as i64),
                &parent.map(|parent| parent.instance_id.as_str()),
                &parent.map(|parent| parent.generation as i32),
                &parent.map(|parent| parent.task_id as i64),
                &new.version,
                &me,
                &new.trace,
            ],
        )
        .await?;
    let Some(row) = started else {
        let status: String = transaction
            .query_one(
                "SELECT status FROM instances WHERE instance_id = $1",
                &[&new.id],
            )
            .await?
            .get(0);
        let status = RuntimeStatus::parse(&status)
            .with_context(|| format!("instance {} has an unknown status {status:?}", new.id))?;
        return Ok(StartOutcome::Conflict(status));
    };
    let generation: i32 = row.get(0);
    if generation > 0 {
        // The last generation's history (its pending effects stay
        // pending), and what reached it as it finished (another
        // instance's event, say): not for the new generation.
        rows::execute(
            transaction,
            "DELETE FROM history WHERE instance_id = $1",
            &[&new.id],
        )
        .await?;
        rows::execute(
            transaction,
            "DELETE FROM inbox WHERE instance_id = $1",
            &[&new.id],
        )
        .await?;
    }
    Ok(StartOutcome::Started)
}

/// Creates the row of entity `id`, owned by host `me`, if `message` is
/// for an entity and it has none. An entity never finishes, so a row
/// that exists is one that takes the message.
pub(crate) async fn create_entity_row(
    transaction: &Transaction<'_>,
    me: &str,
    id: &str,
    message: &Message,
) -> anyhow::Result<()> {
    if !message.addresses_entity() {
        return Ok(());
    }
    let entity = EntityId::of_instance(id).with_context(|| {
        format!("a message for an entity was addressed to {id:?}, which is not an entity's ID")
    })?;
    let new = NewInstance::entity(&entity, now_millis());
    // Held until this transaction ends: the entity's row is not removed
    // under a message on its way (see `remove_entity_if_idle`).
    rows::execute(
        transaction,
        "SELECT pg_advisory_xact_lock_shared($1, hashtext($2))",
        &[&ENTITY_LOCKS, &id],
    )
    .await?;
    rows::execute(
        transaction,
        "INSERT INTO instances
           (instance_id, name, status, generation, input, created_at, updated_at,
            original_input, owner)
         VALUES ($1, $2, 'Pending', 0, $3, $4, $4, $3, $5)
         ON CONFLICT (instance_id) DO NOTHING",
        &[&new.id, &new.name, &new.input, &(new.now as i64), &me],
    )
    .await?;
    Ok(())
}

/// Whether `id` can take a message: it exists, has not finished and has
/// no termination queued; and the live host other than `me` that owns it,
/// if one does. Locks its row (see the module docs).
pub(crate) async fn check_deliverable(
    transaction: &Transaction<'_>,
    me: &str,
    id: &str,
    lock: RowLock,
) -> anyhow::Result<(DeliveryOutcome, Option<String>)> {
    let locking = match lock {
        RowLock::Share => "FOR SHARE",
        RowLock::Update => "FOR UPDATE",
    };
    let sql = format!(
        "SELECT status, terminating,
           CASE WHEN owner <> $2 AND EXISTS (
             SELECT 1 FROM hosts WHERE host_id = owner AND alive_until > {DB_NOW}) THEN owner END
         FROM instances WHERE instance_id = $1 {locking}"
    );
    let Some(row) = rows::query_opt(transaction, &sql, &[&id, &me]).await? else {
        return Ok((DeliveryOutcome::NotFound, None));
    };
    Ok((deliverable(id, &row)?, row.get(2)))
}

/// Whether the instance `id` of `row` (status, terminating) takes messages.
fn deliverable(id: &str, row: &tokio_postgres::Row) -> anyhow::Result<DeliveryOutcome> {
    let status: String = row.get(0);
    let status = RuntimeStatus::parse(&status)
        .with_context(|| format!("instance {id} has an unknown status {status:?}"))?;
    if status.is_terminal() {
        return Ok(DeliveryOutcome::Finished(status));
    }
    if row.get::<_, bool>(1) {
        return Ok(DeliveryOutcome::Terminating);
    }
    Ok(DeliveryOutcome::Accepted)
}

/// How a delivery locks its target's row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RowLock {
    /// Deliveries of events run side by side.
    Share,
    /// One that may change the row (a termination, a direct episode).
    Update,
}

/// Queues `messages` for `id`, in order.
pub(crate) async fn insert_messages(
    transaction: &Transaction<'_>,
    id: &str,
    messages: &[Message],
) -> anyhow::Result<()> {
    if messages.is_empty() {
        return Ok(());
    }
    let texts = messages
        .iter()
        .map(serde_json::to_string)
        .collect::<Result<Vec<_>, _>>()?;
    let statement = transaction
        .prepare_cached(
            "INSERT INTO inbox (instance_id, message)
             SELECT $1, m FROM unnest($2::text[]) WITH ORDINALITY AS u(m, o) ORDER BY o",
        )
        .await?;
    transaction.execute(&statement, &[&id, &texts]).await?;
    if messages
        .iter()
        .any(|message| matches!(message, Message::Terminate { .. }))
    {
        transaction
            .execute(
                &transaction
                    .prepare_cached(
                        "UPDATE instances SET terminating = TRUE WHERE instance_id = $1",
                    )
                    .await?,
                &[&id],
            )
            .await?;
    }
    Ok(())
}

/// Writes `entries` as `id`'s history of `generation` from `first_seq` on,
/// replacing what an abandoned staged commit may have left there.
pub(crate) async fn insert_history(
    transaction: &Transaction<'_>,
    id: &str,
    generation: u32,
    first_seq: usize,
    entries: &[HistoryEntry],
) -> anyhow::Result<()> {
    if entries.is_empty() {
        return Ok(());
    }
    let seqs: Vec<i32> = (first_seq..first_seq + entries.len())
        .map(|seq| seq as i32)
        .collect();
    let texts = entries
        .iter()
        .map(serde_json::to_string)
        .collect::<Result<Vec<_>, _>>()?;
    let statement = transaction
        .prepare_cached(
            "INSERT INTO history (instance_id, generation, seq, entry)
             SELECT $1, $2, s, e FROM unnest($3::int[], $4::text[]) AS u(s, e)
             ON CONFLICT (instance_id, generation, seq) DO UPDATE SET entry = EXCLUDED.entry",
        )
        .await?;
    transaction
        .execute(&statement, &[&id, &(generation as i32), &seqs, &texts])
        .await?;
    Ok(())
}

/// Writes an episode's outcome, unless the instance's revision changed
/// since it was read, host `me` does not own it or its lease expired
/// (fencing: a host taken for dead commits nothing), or it finishes the
/// instance with messages it has not seen. Nothing is written in those
/// cases.
pub(crate) async fn apply_episode(
    transaction: &Transaction<'_>,
    me: &str,
    commit: &EpisodeCommit,
) -> anyhow::Result<CommitOutcome> {
    let id = commit.read.id.as_str();
    anyhow::ensure!(
        commit.updated.revision == commit.read.revision + 1,
        "instance {id}: a commit must move the revision by one (from {} to {})",
        commit.read.revision,
        commit.updated.revision
    );
    let Some(locked) = lock(transaction, me, commit).await? else {
        return Ok(CommitOutcome::Stale);
    };
    if commit.updated.status.is_terminal() && late_messages(transaction, commit).await? {
        return Ok(CommitOutcome::LateMessages);
    }
    write_episode(
        transaction,
        me,
        commit,
        locked.history_len,
        RowWrite::Update,
    )
    .await
}

/// An instance row locked for a commit.
struct Locked {
    history_len: usize,
    effects_pending: bool,
}

/// Locks the row of `commit`'s instance; `None` (stale) unless its revision
/// is the one read, host `me` owns it and `me`'s lease has not expired.
async fn lock(
    transaction: &Transaction<'_>,
    me: &str,
    commit: &EpisodeCommit,
) -> anyhow::Result<Option<Locked>> {
    let statement = transaction
        .prepare_cached(&format!(
            "SELECT revision, history_len, outbox IS NOT NULL,
               owner = $2 AND EXISTS (SELECT 1 FROM hosts WHERE host_id = $2 AND alive_until > {DB_NOW})
             FROM instances WHERE instance_id = $1 FOR UPDATE"
        ))
        .await?;
    let row = transaction
        .query_opt(&statement, &[&commit.read.id, &me])
        .await?;
    Ok(row
        .filter(|row| {
            row.get::<_, i64>(0) == commit.read.revision as i64
                && row.get::<_, Option<bool>>(3) == Some(true)
        })
        .map(|row| Locked {
            history_len: row.get::<_, i32>(1) as usize,
            effects_pending: row.get(2),
        }))
}

/// How [`write_episode`] treats the instance's row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RowWrite {
    /// Locked: to be updated as the commit says.
    Update,
    /// Inserted by this transaction as the commit leaves it: nothing of an
    /// earlier generation is left to drop.
    Inserted,
}

/// Writes `commit` on its row, whose history has `existing` entries.
async fn write_episode(
    transaction: &Transaction<'_>,
    me: &str,
    commit: &EpisodeCommit,
    existing: usize,
    row: RowWrite,
) -> anyhow::Result<CommitOutcome> {
    let id = commit.read.id.as_str();
    let history_len = match &commit.history {
        HistoryChange::Append(entries) => existing + entries.len(),
        HistoryChange::Replace(entries) => entries.len(),
    };
    // The row first: effects may read it (an event an instance sends
    // itself). Then the independent writes, pipelined on the connection:
    // one round trip for them all rather than one each.
    if row == RowWrite::Update {
        update_row(transaction, commit, history_len).await?;
    }
    let (history, consumed, tasks, effects) = futures::join!(
        write_history(transaction, commit, existing),
        consume(transaction, commit),
        queue_tasks(transaction, me, commit, row),
        effects_on_others(transaction, me, commit),
    );
    let (leased, mut notify) = match (history, consumed, tasks, effects) {
        (Ok(()), Ok(()), Ok(leased), Ok(notify)) => (leased, notify),
        (history, consumed, tasks, effects) => {
            let errors = [history.err(), consumed.err(), tasks.err(), effects.err()];
            return Err(first_cause(errors.into_iter().flatten()));
        }
    };
    // After the row's update: a requeued termination sets its flag again.
    insert_messages(transaction, id, &commit.requeued).await?;
    if !commit.requeued.is_empty() {
        notify.push(id.to_owned());
    }
    if commit.removes_empty_entity {
        remove_entity_if_idle(transaction, id).await?;
    }
    Ok(CommitOutcome::Committed(FollowUp { notify, leased }))
}

/// The advisory locks of entity rows (class "ent"), keyed by the hash of
/// the entity's ID: a delivery to an entity holds its lock shared from
/// before it looks for the row until it commits (`create_entity_row`);
/// the commit that removes the entity must hold it exclusively.
const ENTITY_LOCKS: i32 = 0x0065_6e74;

/// Deletes entity `id`'s row (locked by this commit) if no delivery to it
/// is under way and no message is queued for it. Tries the lock without
/// waiting: a delivery in flight keeps the entity, and a later episode
/// removes it. Any delivery after this commit waits for it, finds no row,
/// and creates the entity anew.
async fn remove_entity_if_idle(transaction: &Transaction<'_>, id: &str) -> anyhow::Result<()> {
    let locked: bool = rows::query_opt(
        transaction,
        "SELECT pg_try_advisory_xact_lock($1, hashtext($2))",
        &[&ENTITY_LOCKS, &id],
    )
    .await?
    .is_some_and(|row| row.get(0));
    if !locked {
        return Ok(());
    }
    // A statement of its own, after the lock: it sees every delivery that
    // committed before the lock was granted.
    let queued = rows::query_opt(transaction, &format!("SELECT {QUEUED}"), &[&id]).await?;
    if !queued.is_some_and(|row| row.get::<_, bool>(0)) {
        delete_instance(transaction, id).await?;
    }
    Ok(())
}

/// Of the errors of pipelined writes, the one that caused the others: once
/// a statement fails, every later one fails with "the transaction is
/// aborted" (25P02), and whichever future is polled first may hold that
/// one. The cause decides whether the transaction is retried (a deadlock).
pub(crate) fn first_cause(errors: impl Iterator<Item = anyhow::Error>) -> anyhow::Error {
    let mut aborted = None;
    for error in errors {
        let consequence = error
            .chain()
            .filter_map(|cause| cause.downcast_ref::<tokio_postgres::Error>())
            .any(|error| {
                error.code() == Some(&tokio_postgres::error::SqlState::IN_FAILED_SQL_TRANSACTION)
            });
        if !consequence {
            return error;
        }
        aborted.get_or_insert(error);
    }
    aborted.expect("called with at least one error")
}

/// Deletes the history a commit replaces: of instance `$1`, every row but
/// those of generation `$2` when they are staged (`$3`), read from
/// generation `$4` (the generation the commit read) on. No row is older
/// than that (each replace and restart deleted the older ones, and a
/// staging never writes into a generation left: `store::stageable`), and
/// starting there skips the dead index entries of every earlier
/// generation, which a continue-as-new after each event piles up until
/// autovacuum comes (each a heap page read, were they in the range).
pub(crate) const REPLACED_HISTORY: &str = "DELETE FROM history
     WHERE instance_id = $1 AND generation >= $4 AND (generation <> $2 OR NOT $3)";

/// Appends the commit's history entries after the `existing` ones, or
/// replaces the history with them for a new generation (unless staged:
/// then they are written already).
async fn write_history(
    transaction: &Transaction<'_>,
    commit: &EpisodeCommit,
    existing: usize,
) -> anyhow::Result<()> {
    let (id, generation) = (commit.read.id.as_str(), commit.updated.generation);
    let staged = commit.staging.is_some();
    match &commit.history {
        HistoryChange::Append(entries) => {
            if !staged {
                insert_history(transaction, id, generation, existing, entries).await?;
            }
        }
        HistoryChange::Replace(entries) => {
            // Staged only for a new generation: its rows stay.
            rows::execute(
                transaction,
                REPLACED_HISTORY,
                &[
                    &id,
                    &(generation as i32),
                    &staged,
                    &(commit.read.generation as i32),
                ],
            )
            .await?;
            if !staged {
                insert_history(transaction, id, generation, 0, entries).await?;
            }
        }
    }
    Ok(())
}

/// Whether a message the episode did not read is queued. The row is
/// locked, so no delivery from the API can arrive before the commit;
/// messages that do not lock their target (another instance's events and
/// reports, fired timers, activity results) may, and one that lands as the
/// instance finishes is dropped by its next episode, as an event for a
/// finished instance is.
async fn late_messages(
    transaction: &Transaction<'_>,
    commit: &EpisodeCommit,
) -> anyhow::Result<bool> {
    let statement = transaction
        .prepare_cached(&format!("SELECT {QUEUED_UNREAD}"))
        .await?;
    Ok(transaction
        .query_one(&statement, &[&commit.read.id, &commit.consumed])
        .await?
        .get(0))
}

async fn update_row(
    transaction: &Transaction<'_>,
    commit: &EpisodeCommit,
    history_len: usize,
) -> anyhow::Result<()> {
    let updated = &commit.updated;
    let statement = transaction
        .prepare_cached(
            "UPDATE instances SET status = $2, generation = $3, input = $4, output = $5,
               custom_status = $6, updated_at = $7, version = $8,
               terminating = terminating AND NOT $9, history_len = $10,
               outbox = COALESCE($11, outbox), revision = $12
             WHERE instance_id = $1 AND revision = $13",
        )
        .await?;
    let changed = transaction
        .execute(
            &statement,
            &[
                &updated.id,
                &updated.status.as_str(),
                &(updated.generation as i32),
                &updated.input,
                &updated.output,
                &updated.custom_status,
                &(updated.updated_at as i64),
                &updated.version,
                // A finished instance consumed every message it had.
                &updated.status.is_terminal(),
                &(history_len as i32),
                &commit.staging.map(|staging| staging.token),
                &(updated.revision as i64),
                &(commit.read.revision as i64),
            ],
        )
        .await?;
    anyhow::ensure!(
        changed == 1,
        "instance {}: its revision changed during the commit",
        updated.id
    );
    Ok(())
}

/// Deletes the consumed messages, by ID; all of them must be there.
async fn consume(transaction: &Transaction<'_>, commit: &EpisodeCommit) -> anyhow::Result<()> {
    if commit.consumed.is_empty() {
        return Ok(());
    }
    let statement = transaction
        .prepare_cached("DELETE FROM inbox WHERE instance_id = $1 AND seq = ANY($2)")
        .await?;
    let deleted = transaction
        .execute(&statement, &[&commit.read.id, &commit.consumed])
        .await?;
    anyhow::ensure!(
        deleted as usize == commit.consumed.len(),
        "instance {}: the episode consumed {} messages, but {deleted} of them were queued",
        commit.read.id,
        commit.consumed.len()
    );
    Ok(())
}

/// Drops the timers and activities of a generation that ended, and queues
/// the episode's own (unless staged); returns the activities leased as
/// they were inserted.
async fn queue_tasks(
    transaction: &Transaction<'_>,
    me: &str,
    commit: &EpisodeCommit,
    row: RowWrite,
) -> anyhow::Result<Vec<ActivityWork>> {
    let (id, updated) = (&commit.updated.id, &commit.updated);
    let live_generation = (!updated.status.is_terminal()).then_some(updated.generation as i32);
    if live_generation != Some(commit.read.generation as i32) && row == RowWrite::Update {
        let statement = transaction
            .prepare_cached(
                "WITH timers AS (
                   DELETE FROM timers WHERE instance_id = $1 AND generation IS DISTINCT FROM $2)
                 DELETE FROM activities WHERE instance_id = $1 AND generation IS DISTINCT FROM $2",
            )
            .await?;
        transaction
            .execute(&statement, &[id, &live_generation])
            .await?;
    }
    let Some(generation) = live_generation else {
        return Ok(Vec::new());
    };
    if !commit.cancelled_timers.is_empty() {
        let tasks: Vec<i64> = commit
            .cancelled_timers
            .iter()
            .map(|&task| task as i64)
            .collect();
        let statement = transaction
            .prepare_cached(
                "DELETE FROM timers WHERE instance_id = $1 AND generation = $2 AND task_id = ANY($3::bigint[])",
            )
            .await?;
        transaction
            .execute(&statement, &[id, &generation, &tasks])
            .await?;
    }
    if commit.staging.is_some() {
        return Ok(Vec::new());
    }
    if !commit.timers.is_empty() {
        let (tasks, due): (Vec<i64>, Vec<i64>) = commit
            .timers
            .iter()
            .map(|&(task, fire_at)| (task as i64, fire_at as i64))
            .unzip();
        let statement = transaction
            .prepare_cached(
                "INSERT INTO timers (instance_id, generation, task_id, fire_at)
                 SELECT $1, $2, t, f FROM unnest($3::bigint[], $4::bigint[]) AS u(t, f)
                 ON CONFLICT (instance_id, generation, task_id) DO UPDATE SET fire_at = EXCLUDED.fire_at",
            )
            .await?;
        transaction
            .execute(&statement, &[id, &generation, &tasks, &due])
            .await?;
    }
    insert_activities(transaction, me, commit, generation).await
}

/// Queues the episode's activities, the first `commit.lease.count` of them
/// leased to host `me`; returns those. One already queued (the same task)
/// is left as it is, and not returned.
async fn insert_activities(
    transaction: &Transaction<'_>,
    me: &str,
    commit: &EpisodeCommit,
    generation: i32,
) -> anyhow::Result<Vec<ActivityWork>> {
    if commit.activities.is_empty() {
        return Ok(Vec::new());
    }
    let updated = &commit.updated;
    let mut tasks = Vec::new();
    let mut names = Vec::new();
    let mut inputs = Vec::new();
    let mut leases = Vec::new();
    let mut attempts = Vec::new();
    for (index, activity) in commit.activities.iter().enumerate() {
        tasks.push(activity.task_id as i64);
        names.push(activity.name.as_str());
        inputs.push(activity.input.as_str());
        attempts.push(activity.attempt as i32);
        leases.push(index < commit.lease.count);
    }
    // A lease is measured on the database's clock (see `claim_activities`).
    let statement = transaction
        .prepare_cached(&format!(
            "INSERT INTO activities (instance_id, generation, task_id, name, input, lease_until, lease_owner, attempt, leased_from)
             SELECT $1, $2, t, n, i, CASE WHEN l THEN GREATEST($9, {DB_NOW}) + $10 ELSE 0 END,
                    CASE WHEN l THEN $7 END, a, CASE WHEN l THEN $9 END
               FROM unnest($3::bigint[], $4::text[], $5::text[], $6::boolean[], $8::integer[]) WITH ORDINALITY AS u(t, n, i, l, a, o)
              ORDER BY o
             ON CONFLICT (instance_id, generation, task_id) DO NOTHING
             RETURNING key, task_id, name, input, lease_until, attempt"
        ))
        .await?;
    let rows = transaction
        .query(
            &statement,
            &[
                &updated.id,
                &generation,
                &tasks,
                &names,
                &inputs,
                &leases,
                &me,
                &attempts,
                &(commit.lease.from as i64),
                &(commit.lease.length as i64),
            ],
        )
        .await?;
    let mut leased: Vec<ActivityWork> = rows
        .iter()
        .filter(|row| row.get::<_, i64>(4) > 0)
        .map(|row| ActivityWork {
            key: row.get(0),
            instance_id: updated.id.clone(),
            generation: generation as u32,
            task_id: row.get::<_, i64>(1) as u64,
            name: row.get(2),
            input: row.get(3),
            attempt: row.get::<_, i32>(5) as u32,
            version: updated.version.clone(),
            trace: updated.trace.clone(),
        })
        .collect();
    leased.sort_by_key(|work| work.key);
    Ok(leased)
}

/// What the commit does to other instances: children started, events
/// sent (unless staged: then they are pending effects), the parent told
/// it finished, live children of a terminated instance terminated.
/// Returns the instances that received messages.
async fn effects_on_others(
    transaction: &Transaction<'_>,
    me: &str,
    commit: &EpisodeCommit,
) -> anyhow::Result<Vec<String>> {
    let id = commit.updated.id.as_str();
    let mut effects = Effects::new(transaction, me, id);
    if commit.staging.is_none() {
        for child in &commit.children {
            effects.start_child(child).await?;
        }
        for (target, name, payload) in &commit.sent_events {
            effects
                .send(target, name, payload, commit.updated.updated_at)
                .await?;
        }
        for (target, message) in &commit.messages {
            effects.deliver(target, message.clone()).await?;
        }
    }
    let mut notify = effects.finish().await?;
    if let Some((parent, message)) = commit.report_to_parent() {
        insert_messages(transaction, &parent, &[message]).await?;
        notify.push(parent);
    }
    if let Some(termination) = commit.terminates_children() {
        // Parent before children: the order every transaction locks in.
        let statement = transaction
            .prepare_cached(&format!(
                "SELECT instance_id FROM instances
                 WHERE parent_instance_id = $1 AND status NOT IN {FINISHED} AND NOT terminating
                 ORDER BY instance_id FOR UPDATE"
            ))
            .await?;
        let children: Vec<String> = transaction
            .query(&statement, &[&id])
            .await?
            .iter()
            .map(|row| row.get(0))
            .collect();
        for child in children {
            insert_messages(transaction, &child, std::slice::from_ref(&termination)).await?;
            notify.push(child);
        }
    }
    Ok(notify)
}

/// Applies `direct` if the instance is exactly what it was planned on (see
/// [`DirectEpisode`]); `None` (nothing written) otherwise.
async fn apply_direct(
    transaction: &Transaction<'_>,
    me: &str,
    direct: &DirectEpisode,
) -> anyhow::Result<Option<FollowUp>> {
    let read = &direct.commit.read;
    // Lock first; then the inbox, read by a statement that sees every
    // message committed before the lock was granted.
    let fits = lock(transaction, me, &direct.commit)
        .await?
        .filter(|locked| !locked.effects_pending && locked.history_len == direct.history_len);
    let Some(locked) = fits else {
        return Ok(None);
    };
    let queued: bool = transaction
        .query_one(
            &transaction
                .prepare_cached(&format!("SELECT {QUEUED}"))
                .await?,
            &[&read.id],
        )
        .await?
        .get(0);
    if queued {
        return Ok(None);
    }
    // Nothing queued: nothing it did not read (no late messages).
    match Box::pin(write_episode(
        transaction,
        me,
        &direct.commit,
        locked.history_len,
        RowWrite::Update,
    ))
    .await?
    {
        CommitOutcome::Committed(follow_up) => Ok(Some(follow_up)),
        CommitOutcome::Stale | CommitOutcome::LateMessages => Ok(None),
    }
}

/// Applies `message` to instance `id` by `direct` if it fits, else queues it.
pub(crate) async fn apply_or_queue(
    transaction: &Transaction<'_>,
    me: &str,
    id: &str,
    message: &Message,
    direct: Option<&DirectEpisode>,
) -> anyhow::Result<Applied> {
    if let Some(direct) = direct
        && let Some(follow_up) = apply_direct(transaction, me, direct).await?
    {
        return Ok(Applied::Directly(follow_up));
    }
    insert_messages(transaction, id, std::slice::from_ref(message)).await?;
    Ok(Applied::Queued)
}

/// Deletes an instance and everything stored for it.
pub(crate) async fn delete_instance(transaction: &Transaction<'_>, id: &str) -> anyhow::Result<()> {
    for table in [
        "history",
        "inbox",
        "timers",
        "activities",
        "outbox",
        "instances",
    ] {
        let statement = transaction
            .prepare_cached(&format!("DELETE FROM {table} WHERE instance_id = $1"))
            .await?;
        transaction.execute(&statement, &[&id]).await?;
    }
    Ok(())
}
