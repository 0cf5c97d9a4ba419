//! Rows to model types and back.

use anyhow::Context as _;
use deadpool_postgres::GenericClient;
use reprise_core::model::{Instance, Millis, ParentTask, RuntimeStatus};
use reprise_core::store::InstanceFilter;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

/// The columns [`instance`] reads, in its order.
pub(crate) const INSTANCE_COLUMNS: &str =
    "instance_id, name, status, generation, input, output, custom_status,
    created_at, updated_at, parent_instance_id, parent_generation, parent_task_id, original_input,
    version, revision, trace";

/// How many columns [`INSTANCE_COLUMNS`] has: extra columns follow.
pub(crate) const INSTANCE_COLUMN_COUNT: usize = 16;

/// The statuses of a finished instance, as SQL.
pub(crate) const FINISHED: &str = "('Completed', 'Failed', 'Terminated')";

pub(crate) fn instance(row: &Row) -> anyhow::Result<Instance> {
    let id: String = row.try_get(0)?;
    let status: String = row.try_get(2)?;
    let status = RuntimeStatus::parse(&status)
        .with_context(|| format!("instance {id} has an unknown status {status:?}"))?;
    let parent = match row.try_get::<_, Option<String>>(9)? {
        Some(instance_id) => Some(ParentTask {
            instance_id,
            generation: row.try_get::<_, i32>(10)? as u32,
            task_id: row.try_get::<_, i64>(11)? as u64,
        }),
        None => None,
    };
    Ok(Instance {
        name: row.try_get(1)?,
        status,
        generation: row.try_get::<_, i32>(3)? as u32,
        input: row.try_get(4)?,
        output: row.try_get(5)?,
        custom_status: row.try_get(6)?,
        created_at: row.try_get::<_, i64>(7)? as Millis,
        updated_at: row.try_get::<_, i64>(8)? as Millis,
        parent,
        original_input: row.try_get(12)?,
        version: row.try_get(13)?,
        revision: row.try_get::<_, i64>(14)? as u64,
        trace: row.try_get(15)?,
        id,
    })
}

/// Query parameters of varying types and number.
pub(crate) type Params = Vec<Box<dyn ToSql + Sync + Send>>;

pub(crate) fn refs(params: &Params) -> Vec<&(dyn ToSql + Sync)> {
    params
        .iter()
        .map(|param| param.as_ref() as &(dyn ToSql + Sync))
        .collect()
}

/// The SQL condition and parameters selecting the instances `filter`
/// matches.
pub(crate) fn filter_clause(filter: &InstanceFilter) -> (String, Params) {
    let mut conditions = vec![filter.kind.sql_condition().to_owned()];
    let mut params: Params = Vec::new();
    if let Some(name) = &filter.name {
        params.push(Box::new(name.clone()));
        conditions.push(format!("name = ${}", params.len()));
    }
    if let Some(from) = filter.created_from {
        params.push(Box::new(from as i64));
        conditions.push(format!("created_at >= ${}", params.len()));
    }
    if let Some(to) = filter.created_to {
        params.push(Box::new(to as i64));
        conditions.push(format!("created_at <= ${}", params.len()));
    }
    if !filter.statuses.is_empty() {
        let statuses: Vec<String> = filter
            .statuses
            .iter()
            .map(|status| status.as_str().to_owned())
            .collect();
        params.push(Box::new(statuses));
        conditions.push(format!("status = ANY(${})", params.len()));
    }
    if let Some(prefix) = &filter.id_prefix {
        // A range on the primary key (bytewise, `COLLATE "C"`): IDs from
        // the prefix up to the prefix followed by the highest character.
        params.push(Box::new(prefix.clone()));
        params.push(Box::new(format!("{prefix}\u{10FFFF}")));
        let (low, high) = (params.len() - 1, params.len());
        conditions.push(format!("instance_id >= ${low} AND instance_id < ${high}"));
    }
    (conditions.join(" AND "), params)
}

/// Runs `sql` on `client` (a transaction, or a connection for a statement
/// on its own), prepared once per connection (a statement prepared anew
/// costs a round trip of its own).
pub(crate) async fn execute(
    client: &impl GenericClient,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> anyhow::Result<u64> {
    let statement = client.prepare_cached(sql).await?;
    Ok(client.execute(&statement, params).await?)
}

/// [`execute`] for a query: its rows.
pub(crate) async fn query(
    client: &impl GenericClient,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> anyhow::Result<Vec<Row>> {
    let statement = client.prepare_cached(sql).await?;
    Ok(client.query(&statement, params).await?)
}

/// [`query`] for at most one row.
pub(crate) async fn query_opt(
    client: &impl GenericClient,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> anyhow::Result<Option<Row>> {
    Ok(query(client, sql, params).await?.into_iter().next())
}
