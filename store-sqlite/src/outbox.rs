//! Effects on other instances and on the queues: applied in the commit's
//! own transaction, or, for a staged commit (one too large for a short
//! transaction), written ahead into the `outbox` table and applied a batch
//! per transaction once the commit has landed.
//!
//! A staged commit's rows are invisible until it lands: history entries lie
//! beyond the length the instance row gives its history (or in a generation
//! it has not reached), and `outbox` rows belong to a token the row does not
//! name yet (staged history goes through the ordinary `insert_history`).
//! An abandoned attempt's rows are overwritten by the next, or
//! deleted with the instance's pending effects.

use std::collections::HashMap;

use rusqlite::{Connection, OptionalExtension, params};

use super::{
    check_deliverable, create_entity_row, insert_message, select_instance, start_generation,
};
use reprise_core::model::{Failure, Message, Millis, ParentTask};
use reprise_core::store::{
    DeliveryOutcome, Effect, FollowUp, NewInstance, StartOutcome, start_conflict,
};
use reprise_core::stored_effect;

/// Delivers one commit's (or one batch's) effects to other instances,
/// asking whether a target is live once per target, not once per event:
/// the answer cannot change within the transaction (sent events are not
/// terminations), and a step of N sends to one instance stays O(N).
pub(super) struct Effects<'t> {
    transaction: &'t Connection,
    /// The instance whose effects these are.
    from: &'t str,
    notify: Vec<String>,
    deliverable: HashMap<String, bool>,
    undelivered: HashMap<String, usize>,
}

impl<'t> Effects<'t> {
    pub(super) fn new(transaction: &'t Connection, from: &'t str) -> Effects<'t> {
        Effects {
            transaction,
            from,
            notify: Vec::new(),
            deliverable: HashMap::new(),
            undelivered: HashMap::new(),
        }
    }

    /// Starts a child, or reports to `from` why it could not start.
    pub(super) fn start_child(
        &mut self,
        child: &Result<NewInstance, (ParentTask, Failure)>,
    ) -> anyhow::Result<()> {
        if let Ok(new) = child
            && new.starts_only_if_absent()
            && select_instance(self.transaction, &new.id)?.is_some()
        {
            tracing::info!(from = self.from, id = %new.id, "instance not started: an instance with that ID exists");
            return Ok(());
        }
        let message = match child {
            Ok(new) => match start_generation(self.transaction, new, None)?.0 {
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
        insert_message(self.transaction, self.from, &message)?;
        self.notify.push(self.from.to_owned());
        Ok(())
    }

    /// Queues an event for `target` if it is live; counts it otherwise.
    pub(super) fn send(
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
        self.deliver(target, &message)
    }

    /// Queues `message` for `target` if it is live (creating an entity's
    /// row for a message to an entity); counts it otherwise.
    pub(super) fn deliver(&mut self, target: &str, message: &Message) -> anyhow::Result<()> {
        let accepted = match self.deliverable.get(target) {
            Some(accepted) => *accepted,
            None => {
                create_entity_row(self.transaction, target, message)?;
                let accepted =
                    check_deliverable(self.transaction, target)? == DeliveryOutcome::Accepted;
                self.deliverable.insert(target.to_owned(), accepted);
                if accepted {
                    self.notify.push(target.to_owned());
                }
                accepted
            }
        };
        if !accepted {
            *self.undelivered.entry(target.to_owned()).or_default() += 1;
            return Ok(());
        }
        insert_message(self.transaction, target, message)
    }

    /// The instances that received messages; logs, one line per target,
    /// the events dropped because their target was gone.
    pub(super) fn finish(self) -> Vec<String> {
        for (target, count) in self.undelivered {
            tracing::info!(from = self.from, to = %target, count, "messages not delivered: the target does not exist or has finished");
        }
        self.notify
    }
}

/// See [`Store::stage_effects`](reprise_core::store::Store::stage_effects).
pub(super) fn stage_effects(
    transaction: &Connection,
    id: &str,
    token: i64,
    first: usize,
    effects: Vec<Effect>,
) -> anyhow::Result<()> {
    if first == 0 {
        // What an abandoned attempt left (not the pending effects).
        transaction
            .prepare_cached(
                "DELETE FROM outbox WHERE instance_id = ?1 AND staging != ?2
                   AND staging IS NOT (SELECT outbox FROM instances WHERE instance_id = ?1)",
            )?
            .execute(params![id, token])?;
    }
    let mut insert = transaction.prepare_cached(
        "INSERT OR REPLACE INTO outbox (instance_id, staging, seq, effect) VALUES (?1, ?2, ?3, ?4)",
    )?;
    for (offset, effect) in effects.into_iter().enumerate() {
        let stored = stored_effect::to_json(effect);
        insert.execute(params![id, token, (first + offset) as i64, stored])?;
    }
    Ok(())
}

/// Whether effects of a staged commit of `id` are pending.
pub(super) fn pending(transaction: &Connection, id: &str) -> anyhow::Result<bool> {
    Ok(transaction
        .prepare_cached("SELECT outbox IS NOT NULL FROM instances WHERE instance_id = ?1")?
        .query_row([id], |row| row.get(0))
        .optional()?
        .unwrap_or(false))
}

/// See [`Store::apply_pending_effects`](reprise_core::store::Store::apply_pending_effects).
pub(super) fn apply_pending(
    transaction: &Connection,
    id: &str,
    limit: usize,
) -> anyhow::Result<Option<FollowUp>> {
    let token: Option<i64> = transaction
        .prepare_cached("SELECT outbox FROM instances WHERE instance_id = ?1")?
        .query_row([id], |row| row.get(0))
        .optional()?
        .flatten();
    let Some(token) = token else {
        return Ok(None);
    };
    let rows: Vec<(i64, String)> = transaction
        .prepare_cached(
            "SELECT seq, effect FROM outbox WHERE instance_id = ?1 AND staging = ?2
             ORDER BY seq LIMIT ?3",
        )?
        .query_map(params![id, token, limit as i64], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })?
        .collect::<Result<_, _>>()?;
    let mut effects = Effects::new(transaction, id);
    for (seq, text) in &rows {
        match stored_effect::from_json(text) {
            Ok(effect) => apply(&mut effects, id, effect)?,
            // Retrying cannot help, and it would hold up the instance for
            // good (its next episode waits for its effects): set it aside.
            Err(error) => tracing::error!(
                instance = id,
                effect = seq,
                "setting aside an effect this host cannot read ({error}): {text}"
            ),
        }
    }
    let notify = effects.finish();
    if let Some((last, _)) = rows.last() {
        transaction
            .prepare_cached(
                "DELETE FROM outbox WHERE instance_id = ?1 AND staging = ?2 AND seq <= ?3",
            )?
            .execute(params![id, token, last])?;
    }
    if rows.len() < limit {
        // All applied; rows of abandoned attempts go too.
        transaction
            .prepare_cached("UPDATE instances SET outbox = NULL WHERE instance_id = ?1")?
            .execute([id])?;
        transaction
            .prepare_cached("DELETE FROM outbox WHERE instance_id = ?1")?
            .execute([id])?;
    }
    Ok(Some(FollowUp {
        notify,
        leased: Vec::new(),
    }))
}

/// Applies one pending effect of `id`. Activities and timers are queued
/// only while their generation runs, as a commit would have.
fn apply(effects: &mut Effects, id: &str, effect: Effect) -> anyhow::Result<()> {
    match effect {
        Effect::Child(child) => effects.start_child(&child)?,
        Effect::Send {
            target,
            name,
            payload,
            accepted_at,
        } => effects.send(&target, &name, &payload, accepted_at)?,
        Effect::Deliver { target, message } => effects.deliver(&target, &message)?,
        Effect::Activity {
            generation,
            task_id,
            name,
            input,
            attempt,
        } => {
            effects
                .transaction
                .prepare_cached(
                    "INSERT OR IGNORE INTO activities (instance_id, generation, task_id, name, input, attempt)
                     SELECT ?1, ?2, ?3, ?4, ?5, ?6 FROM instances WHERE instance_id = ?1 AND generation = ?2
                       AND status NOT IN ('Completed', 'Failed', 'Terminated')",
                )?
                .execute(params![id, generation, task_id as i64, name, input, attempt])?;
        }
        Effect::Timer {
            generation,
            task_id,
            fire_at,
        } => {
            effects
                .transaction
                .prepare_cached(
                    "INSERT OR REPLACE INTO timers (instance_id, generation, task_id, fire_at)
                     SELECT ?1, ?2, ?3, ?4 FROM instances WHERE instance_id = ?1 AND generation = ?2
                       AND status NOT IN ('Completed', 'Failed', 'Terminated')",
                )?
                .execute(params![id, generation, task_id as i64, fire_at as i64])?;
        }
    }
    Ok(())
}
