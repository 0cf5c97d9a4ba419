//! Effects on other instances and on the queues: applied in the commit's
//! own transaction, or, for a staged commit, written ahead into `outbox`
//! and applied a batch per transaction once the commit has landed (the
//! same rules as the SQLite backend's; see "The store contract").

use std::collections::HashMap;

use deadpool_postgres::Transaction;
use reprise_core::model::{Failure, Message, Millis, ParentTask};
use reprise_core::store::{Effect, FollowUp, NewInstance, StartOutcome, start_conflict};
use reprise_core::stored_effect;

use crate::episode::{create_entity_row, insert_messages, start_generation};
use crate::rows::{self, FINISHED};

/// Delivers one commit's (or one batch's) effects to other instances,
/// asking whether a target is live once per target, and writing each
/// target's messages in one statement.
pub(crate) struct Effects<'t> {
    transaction: &'t Transaction<'t>,
    /// This host: it owns the children it starts.
    me: &'t str,
    /// The instance whose effects these are.
    from: &'t str,
    notify: Vec<String>,
    /// Whether each target seen so far takes events.
    deliverable: HashMap<String, bool>,
    /// Messages to write, per target, in the order targets were first seen.
    outgoing: Vec<(String, Vec<Message>)>,
    undelivered: HashMap<String, usize>,
}

impl<'t> Effects<'t> {
    pub(crate) fn new(transaction: &'t Transaction<'t>, me: &'t str, from: &'t str) -> Effects<'t> {
        Effects {
            transaction,
            me,
            from,
            notify: Vec::new(),
            deliverable: HashMap::new(),
            outgoing: Vec::new(),
            undelivered: HashMap::new(),
        }
    }

    /// Starts a child, or reports to `from` why it could not start.
    pub(crate) async fn start_child(
        &mut self,
        child: &Result<NewInstance, (ParentTask, Failure)>,
    ) -> anyhow::Result<()> {
        if let Ok(new) = child
            && new.starts_only_if_absent()
            && !rows::query(
                self.transaction,
                "SELECT 1 FROM instances WHERE instance_id = $1",
                &[&new.id],
            )
            .await?
            .is_empty()
        {
            tracing::info!(from = self.from, id = %new.id, "instance not started: an instance with that ID exists");
            return Ok(());
        }
        let message = match child {
            Ok(new) => match start_generation(self.transaction, self.me, new, None)
                .await?
                .0
            {
                StartOutcome::Started => {
                    self.notify.push(new.id.clone());
                    return Ok(());
                }
                StartOutcome::Conflict(status) => match start_conflict(new, status) {
                    Some(message) => message,
                    None => {
                        tracing::info!(from = self.from, id = %new.id, "instance not started: an instance with that ID exists");
                        return Ok(());
                    }
                },
            },
            Err((parent, error)) => Message::SubOrchestrationDone {
                generation: parent.generation,
                id: parent.task_id,
                result: Err(error.clone()),
            },
        };
        let from = self.from.to_owned();
        self.queue(&from, message);
        Ok(())
    }

    /// Queues an event for `target` if it is live; counts it otherwise.
    pub(crate) async fn send(
        &mut self,
        target: &str,
        name: &str,
        payload: &str,
        accepted_at: Millis,
    ) -> anyhow::Result<()> {
        let message = Message::Event {
            name: name.to_owned(),
            payload: payload.to_owned(),
            accepted_at,
        };
        self.deliver(target, message).await
    }

    /// Queues `message` for `target` if it is live (creating an entity's
    /// row for a message to an entity); counts it otherwise.
    pub(crate) async fn deliver(&mut self, target: &str, message: Message) -> anyhow::Result<()> {
        let accepted = match self.deliverable.get(target) {
            Some(accepted) => *accepted,
            None => {
                create_entity_row(self.transaction, self.me, target, &message).await?;
                let accepted = self.takes_events(target).await?;
                self.deliverable.insert(target.to_owned(), accepted);
                accepted
            }
        };
        if !accepted {
            *self.undelivered.entry(target.to_owned()).or_default() += 1;
            return Ok(());
        }
        self.queue(target, message);
        Ok(())
    }

    /// Whether `target` exists, has not finished and has no termination
    /// queued. Read without a lock: a sent event races its target's end as
    /// it would across the network (a target that finishes meanwhile drops
    /// it); locking would order two instances' commits against each other.
    async fn takes_events(&self, target: &str) -> anyhow::Result<bool> {
        let statement = self
            .transaction
            .prepare_cached(&format!(
                "SELECT EXISTS (SELECT 1 FROM instances WHERE instance_id = $1
                   AND status NOT IN {FINISHED} AND NOT terminating)"
            ))
            .await?;
        Ok(self
            .transaction
            .query_one(&statement, &[&target])
            .await?
            .get(0))
    }

    fn queue(&mut self, target: &str, message: Message) {
        match self.outgoing.iter_mut().find(|(id, _)| id == target) {
            Some((_, messages)) => messages.push(message),
            None => {
                self.outgoing.push((target.to_owned(), vec![message]));
                self.notify.push(target.to_owned());
            }
        }
    }

    /// Writes the queued messages; returns the instances that received
    /// messages and logs, one line per target, the events dropped.
    pub(crate) async fn finish(self) -> anyhow::Result<Vec<String>> {
        for (target, messages) in &self.outgoing {
            insert_messages(self.transaction, target, messages).await?;
        }
        for (target, count) in self.undelivered {
            tracing::info!(from = self.from, to = %target, count, "messages not delivered: the target does not exist or has finished");
        }
        Ok(self.notify)
    }
}

/// See [`Store::stage_effects`](reprise_core::store::Store::stage_effects).
pub(crate) async fn stage(
    transaction: &Transaction<'_>,
    id: &str,
    token: i64,
    first: usize,
    effects: Vec<Effect>,
) -> anyhow::Result<()> {
    if first == 0 {
        // What an abandoned attempt left (not the pending effects).
        rows::execute(transaction, "DELETE FROM outbox WHERE instance_id = $1 AND staging <> $2
                   AND staging IS DISTINCT FROM (SELECT outbox FROM instances WHERE instance_id = $1)",
                &[&id, &token],
            )
            .await?;
    }
    let seqs: Vec<i32> = (first..first + effects.len())
        .map(|seq| seq as i32)
        .collect();
    let texts: Vec<String> = effects.into_iter().map(stored_effect::to_json).collect();
    rows::execute(
        transaction,
        "INSERT INTO outbox (instance_id, staging, seq, effect)
             SELECT $1, $2, s, e FROM unnest($3::int[], $4::text[]) AS u(s, e)
             ON CONFLICT (instance_id, staging, seq) DO UPDATE SET effect = EXCLUDED.effect",
        &[&id, &token, &seqs, &texts],
    )
    .await?;
    Ok(())
}

/// See [`Store::apply_pending_effects`](reprise_core::store::Store::apply_pending_effects).
pub(crate) async fn apply_pending(
    transaction: &Transaction<'_>,
    me: &str,
    id: &str,
    limit: usize,
) -> anyhow::Result<Option<FollowUp>> {
    let token: Option<i64> = rows::query_opt(
        transaction,
        "SELECT outbox FROM instances WHERE instance_id = $1 FOR UPDATE",
        &[&id],
    )
    .await?
    .and_then(|row| row.get(0));
    let Some(token) = token else {
        return Ok(None);
    };
    let pending = rows::query(
        transaction,
        "SELECT seq, effect FROM outbox WHERE instance_id = $1 AND staging = $2
             ORDER BY seq LIMIT $3",
        &[&id, &token, &(limit as i64)],
    )
    .await?;
    let mut effects = Effects::new(transaction, me, id);
    for row in &pending {
        let (seq, text): (i32, String) = (row.get(0), row.get(1));
        match stored_effect::from_json(&text) {
            Ok(effect) => apply(&mut effects, id, effect).await?,
            // Retrying cannot help, and it would hold up the instance for
            // good (its next episode waits for its effects): set it aside.
            Err(error) => tracing::error!(
                instance = id,
                effect = seq,
                "setting aside an effect this host cannot read ({error}): {text}"
            ),
        }
    }
    let notify = effects.finish().await?;
    if let Some(last) = pending.last() {
        rows::execute(
            transaction,
            "DELETE FROM outbox WHERE instance_id = $1 AND staging = $2 AND seq <= $3",
            &[&id, &token, &last.get::<_, i32>(0)],
        )
        .await?;
    }
    if pending.len() < limit {
        // All applied; rows of abandoned attempts go too.
        rows::execute(
            transaction,
            "UPDATE instances SET outbox = NULL WHERE instance_id = $1",
            &[&id],
        )
        .await?;
        rows::execute(
            transaction,
            "DELETE FROM outbox WHERE instance_id = $1",
            &[&id],
        )
        .await?;
    }
    Ok(Some(FollowUp {
        notify,
        leased: Vec::new(),
    }))
}

/// Applies one pending effect of `id`. Activities and timers are queued
/// only while their generation runs, as a commit would have.
async fn apply(effects: &mut Effects<'_>, id: &str, effect: Effect) -> anyhow::Result<()> {
    let live = format!("status NOT IN {FINISHED}");
    match effect {
        Effect::Child(child) => effects.start_child(&child).await?,
        Effect::Send {
            target,
            name,
            payload,
            accepted_at,
        } => effects.send(&target, &name, &payload, accepted_at).await?,
        Effect::Deliver { target, message } => effects.deliver(&target, message).await?,
        Effect::Activity {
            generation,
            task_id,
            name,
            input,
            attempt,
        } => {
            rows::execute(
                effects.transaction,
                &format!(
                    "INSERT INTO activities (instance_id, generation, task_id, name, input, attempt)
                         SELECT $1, $2, $3, $4, $5, $6 FROM instances
                          WHERE instance_id = $1 AND generation = $2 AND {live}
                         ON CONFLICT (instance_id, generation, task_id) DO NOTHING"
                ),
                &[
                    &id,
                    &(generation as i32),
                    &(task_id as i64),
                    &name,
                    &input,
                    &(attempt as i32),
                ],
            )
            .await?;
        }
        Effect::Timer {
            generation,
            task_id,
            fire_at,
        } => {
            rows::execute(effects.transaction, &format!(
                        "INSERT INTO timers (instance_id, generation, task_id, fire_at)
                         SELECT $1, $2, $3, $4 FROM instances
                          WHERE instance_id = $1 AND generation = $2 AND {live}
                         ON CONFLICT (instance_id, generation, task_id) DO UPDATE SET fire_at = EXCLUDED.fire_at"
                    ),
                    &[&id, &(generation as i32), &(task_id as i64), &(fire_at as i64)],
                )
                .await?;
        }
    }
    Ok(())
}
