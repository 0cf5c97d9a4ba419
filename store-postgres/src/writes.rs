//! The writes that are batched (`batch.rs`): each owns what it writes,
//! and applies it with `episode.rs`.

use std::future::Future;

use deadpool_postgres::Transaction;
use reprise_core::model::{Failure, Message};
use reprise_core::store::{
    ActivityWork, Applied, CommitOutcome, DeliveryOutcome, DirectEpisode, EpisodeCommit,
    NewInstance, StartOutcome,
};

use crate::batch::{Access, Write};
use crate::episode::{self, RowLock};
use crate::rows;

/// `access`, or [`Access::Alone`] if `commit` decides on other instances
/// (starts or terminates children).
fn committing(commit: &EpisodeCommit, access: Access) -> Access {
    match !commit.children.is_empty() || commit.terminates_children().is_some() {
        true => Access::Alone,
        false => access,
    }
}

/// [`committing`] for a write that may carry a direct episode.
fn directly(direct: Option<&DirectEpisode>, access: Access) -> Access {
    direct.map_or(access, |direct| committing(&direct.commit, access))
}

/// A start: a new generation under an ID, its start message applied by
/// `direct` or queued.
pub(crate) struct Start {
    pub(crate) new: NewInstance,
    pub(crate) direct: Option<DirectEpisode>,
}

impl Write for Start {
    type Output = (StartOutcome, Applied);
    const KIND: &'static str = "start";

    fn instance(&self) -> &str {
        &self.new.id
    }

    fn access(&self) -> Access {
        directly(self.direct.as_ref(), Access::Exclusive)
    }

    fn apply<'a>(
        &'a self,
        transaction: &'a Transaction<'_>,
        me: &'a str,
    ) -> impl Future<Output = anyhow::Result<Self::Output>> + Send + 'a {
        episode::start_generation(transaction, me, &self.new, self.direct.as_ref())
    }
}

/// A message from the API to an instance.
pub(crate) struct Delivery {
    pub(crate) id: String,
    pub(crate) message: Message,
    pub(crate) direct: Option<DirectEpisode>,
}

impl Delivery {
    /// Share for an event queued; update for what may change the row (a
    /// termination, a direct episode).
    fn lock(&self) -> RowLock {
        let terminates = matches!(self.message, Message::Terminate { .. });
        match self.direct.is_some() || terminates {
            true => RowLock::Update,
            false => RowLock::Share,
        }
    }
}

/// What became of a [`Delivery`].
pub(crate) struct Delivered {
    pub(crate) outcome: DeliveryOutcome,
    pub(crate) applied: Applied,
    /// The live host that runs the instance and must be told (queued
    /// for another host's instance: [`Applied::Elsewhere`]).
    owner: Option<String>,
}

impl Write for Delivery {
    type Output = Delivered;
    const KIND: &'static str = "delivery";

    fn instance(&self) -> &str {
        &self.id
    }

    fn access(&self) -> Access {
        let access = match self.lock() {
            RowLock::Share => Access::Shared,
            RowLock::Update => Access::Exclusive,
        };
        directly(self.direct.as_ref(), access)
    }

    async fn apply(&self, transaction: &Transaction<'_>, me: &str) -> anyhow::Result<Self::Output> {
        let lock = self.lock();
        episode::create_entity_row(transaction, me, &self.id, &self.message).await?;
        let (outcome, owner) = episode::check_deliverable(transaction, me, &self.id, lock).await?;
        if outcome != DeliveryOutcome::Accepted {
            return Ok(Delivered {
                outcome,
                applied: Applied::Queued,
                owner: None,
            });
        }
        let direct = self.direct.as_ref();
        let applied =
            episode::apply_or_queue(transaction, me, &self.id, &self.message, direct).await?;
        Ok(match (applied, owner) {
            (Applied::Queued, Some(owner)) => Delivered {
                outcome,
                applied: Applied::Elsewhere,
                owner: Some(owner),
            },
            (applied, _) => Delivered {
                outcome,
                applied,
                owner: None,
            },
        })
    }

    fn owner_to_tell(output: &Delivered) -> Option<&str> {
        output.owner.as_deref()
    }
}

/// An episode's outcome.
pub(crate) struct Commit(pub(crate) EpisodeCommit);

impl Write for Commit {
    type Output = CommitOutcome;
    const KIND: &'static str = "episode";

    fn instance(&self) -> &str {
        &self.0.read.id
    }

    fn access(&self) -> Access {
        committing(&self.0, Access::Exclusive)
    }

    fn apply<'a>(
        &'a self,
        transaction: &'a Transaction<'_>,
        me: &'a str,
    ) -> impl Future<Output = anyhow::Result<Self::Output>> + Send + 'a {
        episode::apply_episode(transaction, me, &self.0)
    }
}

/// An activity's result, for the instance that scheduled it; `None` if
/// the activity is no longer queued (another host recorded it, or its
/// generation ended).
pub(crate) struct ActivityResult {
    pub(crate) work: ActivityWork,
    pub(crate) result: Result<String, Failure>,
    pub(crate) direct: Option<DirectEpisode>,
}

impl Write for ActivityResult {
    type Output = Option<Applied>;
    const KIND: &'static str = "activity-result";

    fn instance(&self) -> &str {
        &self.work.instance_id
    }

    fn access(&self) -> Access {
        directly(self.direct.as_ref(), Access::Exclusive)
    }

    async fn apply(&self, transaction: &Transaction<'_>, me: &str) -> anyhow::Result<Self::Output> {
        let work = &self.work;
        let removed = rows::execute(
            transaction,
            "DELETE FROM activities WHERE key = $1",
            &[&work.key],
        )
        .await?;
        if removed == 0 {
            return Ok(None);
        }
        let message = Message::ActivityDone {
            generation: work.generation,
            id: work.task_id,
            result: self.result.clone(),
        };
        let direct = self.direct.as_ref();
        let applied =
            episode::apply_or_queue(transaction, me, &work.instance_id, &message, direct).await?;
        Ok(Some(applied))
    }
}
