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
use serde::{Deserialize, Serialize};

use super::{check_deliverable, insert_message, start_generation};
use reprise_core::model::{Message, Millis, ParentTask};
use reprise_core::store::{DeliveryOutcome, Effect, FollowUp, NewInstance, StartOutcome};

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
        child: &Result<NewInstance, (ParentTask, String)>,
    ) -> anyhow::Result<()> {
        let (parent, error) = match child {
            Ok(new) => match start_generation(self.transaction, new, None)?.0 {
                StartOutcome::Started => {
                    self.notify.push(new.id.clone());
                    return Ok(());
                }
                StartOutcome::Conflict(status) => (
                    new.parent.clone().expect("children have a parent"),
                    format!(
                        "an instance with ID '{}' already exists and is {status}",
                        new.id
                    ),
                ),
            },
            Err(failure) => failure.clone(),
        };
        let message = Message::SubOrchestrationDone {
            generation: parent.generation,
            id: parent.task_id,
            result: Err(error),
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
        let accepted = match self.deliverable.get(target) {
            Some(accepted) => *accepted,
            None => {
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
        let message = Message::Event {
            name: name.to_owned(),
            payload: payload.to_owned(),
            accepted_at,
        };
        insert_message(self.transaction, target, &message)
    }

    /// The instances that received messages; logs, one line per target,
    /// the events dropped because their target was gone.
    pub(super) fn finish(self) -> Vec<String> {
        for (target, count) in self.undelivered {
            tracing::info!(from = self.from, to = %target, count, "events not delivered: the target does not exist or has finished");
        }
        self.notify
    }
}

/// An [`Effect`] as the `outbox` table keeps it (JSON, tagged by `type`).
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type")]
enum StoredEffect {
    Start {
        id: String,
        name: String,
        input: String,
        now: Millis,
        version: Option<String>,
        parent_instance_id: String,
        parent_generation: u32,
        parent_task_id: u64,
    },
    StartFailed {
        parent_instance_id: String,
        parent_generation: u32,
        parent_task_id: u64,
        error: String,
    },
    Send {
        target: String,
        name: String,
        payload: String,
        accepted_at: Millis,
    },
    Activity {
        generation: u32,
        task_id: u64,
        name: String,
        input: String,
    },
    Timer {
        generation: u32,
        task_id: u64,
        fire_at: Millis,
    },
}

impl StoredEffect {
    fn from_effect(effect: Effect) -> StoredEffect {
        match effect {
            Effect::Child(Ok(new)) => {
                let parent = new.parent.expect("children have a parent");
                StoredEffect::Start {
                    id: new.id,
                    name: new.name,
                    input: new.input,
                    now: new.now,
                    version: new.version,
                    parent_instance_id: parent.instance_id,
                    parent_generation: parent.generation,
                    parent_task_id: parent.task_id,
                }
            }
            Effect::Child(Err((parent, error))) => StoredEffect::StartFailed {
                parent_instance_id: parent.instance_id,
                parent_generation: parent.generation,
                parent_task_id: parent.task_id,
                error,
            },
            Effect::Send {
                target,
                name,
                payload,
                accepted_at,
            } => StoredEffect::Send {
                target,
                name,
                payload,
                accepted_at,
            },
            Effect::Activity {
                generation,
                task_id,
                name,
                input,
            } => StoredEffect::Activity {
                generation,
                task_id,
                name,
                input,
            },
            Effect::Timer {
                generation,
                task_id,
                fire_at,
            } => StoredEffect::Timer {
                generation,
                task_id,
                fire_at,
            },
        }
    }
}

fn parent_task(instance_id: String, generation: u32, task_id: u64) -> ParentTask {
    ParentTask {
        instance_id,
        generation,
        task_id,
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
        let stored = serde_json::to_string(&StoredEffect::from_effect(effect))?;
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
        match serde_json::from_str::<StoredEffect>(text) {
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
fn apply(effects: &mut Effects, id: &str, effect: StoredEffect) -> anyhow::Result<()> {
    match effect {
        StoredEffect::Start {
            id: child,
            name,
            input,
            now,
            version,
            parent_instance_id,
            parent_generation,
            parent_task_id,
        } => {
            let new = NewInstance {
                id: child,
                name,
                input,
                now,
                parent: Some(parent_task(
                    parent_instance_id,
                    parent_generation,
                    parent_task_id,
                )),
                version,
            };
            effects.start_child(&Ok(new))?;
        }
        StoredEffect::StartFailed {
            parent_instance_id,
            parent_generation,
            parent_task_id,
            error,
        } => {
            let parent = parent_task(parent_instance_id, parent_generation, parent_task_id);
            effects.start_child(&Err((parent, error)))?;
        }
        StoredEffect::Send {
            target,
            name,
            payload,
            accepted_at,
        } => effects.send(&target, &name, &payload, accepted_at)?,
        StoredEffect::Activity {
            generation,
            task_id,
            name,
            input,
        } => {
            effects
                .transaction
                .prepare_cached(
                    "INSERT OR IGNORE INTO activities (instance_id, generation, task_id, name, input)
                     SELECT ?1, ?2, ?3, ?4, ?5 FROM instances WHERE instance_id = ?1 AND generation = ?2
                       AND status NOT IN ('Completed', 'Failed', 'Terminated')",
                )?
                .execute(params![id, generation, task_id as i64, name, input])?;
        }
        StoredEffect::Timer {
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
