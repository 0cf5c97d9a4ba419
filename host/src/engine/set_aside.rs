//! Setting aside an instance's messages when the host itself cannot process
//! them: a message it cannot read, a history it cannot parse, a fault that
//! recurs on every pass. The guest's failures already fail its instance;
//! these are the host's, and retrying them forever (as Durable Functions
//! does with poison messages) would spend a worker on them forever.
//!
//! After [`MAX_FAILED_PASSES`] failed passes in a row (the scheduler counts,
//! with backoff between passes), the instance is failed with a reason that
//! says so, in one commit that consumes its queued messages and reports to
//! its parent, as any failure does. Outside causes do not count: when the
//! database is unavailable (a full disk), every instance waits, and none is
//! failed for it.

use std::sync::Arc;

use super::entity_calls::EntityCalls;
use super::episode::json_string;
use super::{Shared, blocking, schedule};
use crate::entity::EntityId;
use crate::model::{HistoryEntry, Instance, Millis, RuntimeStatus, Sender, now_millis};
use crate::store::{CommitOutcome, EpisodeCommit};

/// Failed passes in a row after which an instance's messages are set aside.
pub(super) const MAX_FAILED_PASSES: u32 = 6;

/// How much of the last error the failure reason quotes.
const REASON_BYTES: usize = 2048;

/// Fails `id` with a reason quoting `error` (the last pass's), consuming
/// every message queued for it.
pub(super) async fn set_aside(
    shared: Arc<Shared>,
    id: String,
    error: String,
) -> anyhow::Result<()> {
    let reason = reason(&error);
    tracing::error!(instance = %id, "setting aside its messages: {reason}");
    let store = Arc::clone(&shared.store);
    let target = id.clone();
    let recorder = Arc::clone(&shared);
    let notify = blocking(move || {
        // Each retry means a message arrived meanwhile (it is set aside too).
        for _ in 0..100 {
            let Some((instance, history)) = store.instance_with_history(&target)? else {
                return Ok(Vec::new());
            };
            let queued = store.queued_messages(&target)?;
            if queued.is_empty() {
                return Ok(Vec::new());
            }
            let commit = failing(instance, &history, queued, &reason, now_millis());
            match store.commit_episode(&commit)? {
                CommitOutcome::Committed(follow_up) => {
                    recorder.record(&recorder.record_of(&commit, None));
                    return Ok(follow_up.notify);
                }
                CommitOutcome::LateMessages | CommitOutcome::Stale => continue,
            }
        }
        anyhow::bail!("instance {target}: cannot set its messages aside, they keep changing")
    })
    .await?;
    // Whatever execution is kept warm for it saw none of this.
    drop(shared.warm.take(&id));
    for other in notify {
        schedule(&shared, &other);
    }
    Ok(())
}

fn reason(error: &str) -> String {
    let mut end = error.len().min(REASON_BYTES);
    while !error.is_char_boundary(end) {
        end -= 1;
    }
    let ellipsis = if end < error.len() { "..." } else { "" };
    format!(
        "the host failed {MAX_FAILED_PASSES} times in a row to process this instance's messages and set them aside (a fault of the host or its database, not of the orchestrator): {}{ellipsis}",
        &error[..end]
    )
}

/// The commit that fails `instance` (whose generation's history is
/// `history`) for `reason` and consumes its messages `queued`, releasing
/// the entities it holds locked; a finished instance, or an entity (which
/// never finishes, and keeps its state), only has them consumed.
fn failing(
    instance: Instance,
    history: &[HistoryEntry],
    queued: Vec<i64>,
    reason: &str,
    now: Millis,
) -> EpisodeCommit {
    let mut updated = instance.successor(now);
    if instance.status.is_terminal() || EntityId::is_entity(&instance.id) {
        return EpisodeCommit::consuming(instance, updated, Vec::new(), queued);
    }
    updated.status = RuntimeStatus::Failed;
    updated.output = Some(json_string(reason));
    let entry = HistoryEntry::ExecutionFailed {
        timestamp: updated.updated_at,
        error: reason.to_owned(),
        details: None,
    };
    let mut entities = EntityCalls::after(history);
    entities.release(Sender {
        instance_id: instance.id.clone(),
        generation: instance.generation,
        task_id: None,
    });
    let mut commit = EpisodeCommit::consuming(instance, updated, vec![entry], queued);
    commit.messages = entities.messages;
    commit
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entity::EntityRecord;
    use crate::model::Message;
    use crate::store::{HistoryChange, NewInstance};

    fn instance(id: &str) -> Instance {
        let new = NewInstance {
            id: id.into(),
            name: "Transfer".into(),
            input: "null".into(),
            now: 1,
            parent: None,
            version: None,
            trace: None,
        };
        let mut instance = new.started(0);
        instance.status = RuntimeStatus::Running;
        instance
    }

    #[test]
    fn an_orchestration_set_aside_fails_and_releases_the_entities_it_locked() {
        let history = [HistoryEntry::EntityLockRequested {
            timestamp: 1,
            id: 3,
            targets: vec!["@account@a".into(), "@account@b".into()],
        }];
        let commit = failing(instance("t"), &history, vec![7], "broken", 2);
        assert_eq!(commit.updated.status, RuntimeStatus::Failed);
        let [(to, Message::EntityUnlock { holder, .. })] = &commit.messages[..] else {
            panic!("expected one release: {:?}", commit.messages);
        };
        assert_eq!((to.as_str(), holder.task_id), ("@account@a", Some(3)));
    }

    #[test]
    fn an_entity_set_aside_keeps_its_state_and_only_loses_the_messages() {
        let entity = instance("@counter@x");
        let history = [EntityRecord::default().into_entry()];
        let commit = failing(entity.clone(), &history, vec![7], "broken", 2);
        assert_eq!(commit.updated.status, entity.status);
        assert!(matches!(&commit.history, HistoryChange::Append(entries) if entries.is_empty()));
        assert!(commit.messages.is_empty());
    }
}
