//! Instances by status, as the schema's trigger keeps them
//! (`schema::INSTANCE_COUNTS`): totals in `instance_counts`, and the
//! changes since the last fold in `instance_count_changes`. A fold moves
//! the changes into the totals in one statement, so any snapshot sums to
//! the same counts; the heartbeat folds every few seconds (so the changes
//! stay few however long nobody reads), and so does every read.

use anyhow::Context as _;
use deadpool_postgres::GenericClient;

use reprise_core::model::RuntimeStatus;

/// The advisory lock a fold holds ("Rcounts"): one fold at a time; a
/// fold that finds it taken is skipped, not waited for.
const FOLD_LOCK: i64 = 0x0052_636f_756e_7473;

/// Folds the changes into the totals, unless another fold is under way;
/// in the caller's transaction.
pub(crate) async fn fold(transaction: &deadpool_postgres::Transaction<'_>) -> anyhow::Result<()> {
    let free: bool = transaction
        .query_one("SELECT pg_try_advisory_xact_lock($1)", &[&FOLD_LOCK])
        .await?
        .get(0);
    if free {
        transaction
            .execute(
                "WITH moved AS (DELETE FROM instance_count_changes RETURNING status, change)
                 INSERT INTO instance_counts SELECT status, sum(change) FROM moved GROUP BY status
                 ON CONFLICT (status) DO UPDATE SET total = instance_counts.total + EXCLUDED.total",
                &[],
            )
            .await
            .context("cannot fold the changes of the instance counts")?;
    }
    Ok(())
}

/// The counts of instances by status (each status with any), in one
/// statement: totals plus the changes not folded yet.
pub(crate) async fn read(client: &impl GenericClient) -> anyhow::Result<Vec<(RuntimeStatus, u64)>> {
    let rows = client
        .query(
            "SELECT status, sum(total)::BIGINT FROM (
                 SELECT status, total FROM instance_counts
                 UNION ALL SELECT status, change FROM instance_count_changes) AS counted
             GROUP BY status HAVING sum(total) > 0",
            &[],
        )
        .await?;
    rows.iter()
        .map(|row| {
            let status: &str = row.get(0);
            let status = RuntimeStatus::parse(status)
                .with_context(|| format!("unknown status {status:?} in the database"))?;
            Ok((status, row.get::<_, i64>(1) as u64))
        })
        .collect()
}
