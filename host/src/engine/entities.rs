//! What the entity routes ask of the engine: signal an entity, read one,
//! list them. (An entity's episodes are `entity_episode.rs`'s.)

use std::sync::Arc;

use super::{Delivery, Engine, EngineError, blocking};
use crate::entity::{EntityId, EntityRecord};
use crate::model::{InstanceId, Message, Millis, now_millis};
use crate::store::{DeliveryOutcome, InstanceFilter, InstanceKind, PageCursor};

/// An entity that exists (it has state), as a client sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct EntityView {
    pub id: EntityId,
    /// When it last applied an operation.
    pub last_operation: Millis,
    /// JSON.
    pub state: String,
}

/// Which entities a listing selects.
#[derive(Debug, Clone, Default)]
pub struct EntityQuery {
    /// Only entities of this name (any case).
    pub name: Option<String>,
    /// Last operation at or after.
    pub from: Option<Millis>,
    /// Last operation at or before.
    pub to: Option<Millis>,
}

impl Engine {
    /// Queues operation `operation` with `input` (JSON) for entity `id`,
    /// creating it if it has never had a message; durable once this
    /// returns. A client's signals to one entity apply in the order they
    /// were accepted.
    pub async fn signal_entity(
        &self,
        id: &EntityId,
        operation: String,
        input: String,
    ) -> Result<(), EngineError> {
        if !self.shared.runtime.serves_entity(id.name()) {
            return Err(EngineError::UnknownEntity(id.name().to_owned()));
        }
        self.check_load()?;
        let instance_id = InstanceId::parse(&id.instance_id()).map_err(anyhow::Error::msg)?;
        let message = Message::EntityOperation {
            operation,
            input,
            sender: None,
            accepted_at: now_millis(),
        };
        match self.deliver(&instance_id, message, Delivery::Queue).await? {
            DeliveryOutcome::Accepted => Ok(()),
            // An entity's row exists once it is sent anything, and never
            // finishes.
            other => Err(anyhow::anyhow!("entity {id} did not take a signal: {other:?}").into()),
        }
    }

    /// Entity `id`, if it exists (has state), as last committed.
    pub async fn entity(&self, id: &EntityId) -> anyhow::Result<Option<EntityView>> {
        let store = Arc::clone(&self.shared.store);
        let id = id.clone();
        blocking(move || {
            let Some((_, history)) = store.instance_with_history(&id.instance_id())? else {
                return Ok(None);
            };
            Ok(view(id, &history))
        })
        .await
    }

    /// One page of existing entities `query` selects, in creation order
    /// after `after`, with the cursor of the next page if there may be
    /// more. A page may hold fewer than `page_size` (entities without
    /// state are skipped after the page is read).
    pub async fn query_entities(
        &self,
        query: EntityQuery,
        after: Option<PageCursor>,
        page_size: usize,
    ) -> anyhow::Result<(Vec<EntityView>, Option<PageCursor>)> {
        let filter = InstanceFilter {
            kind: InstanceKind::Entities,
            id_prefix: Some(match &query.name {
                Some(name) => format!("@{}@", name.to_lowercase()),
                None => "@".to_owned(),
            }),
            ..InstanceFilter::default()
        };
        let (rows, next) = self.query(filter, after, page_size).await?;
        let store = Arc::clone(&self.shared.store);
        let views = blocking(move || {
            let mut views = Vec::new();
            for row in rows {
                let Some(id) = EntityId::of_instance(&row.id) else {
                    continue;
                };
                // Gone since the page was read: nothing to show.
                let Some((_, history)) = store.instance_with_history(&row.id)? else {
                    continue;
                };
                views.extend(view(id, &history).filter(|view| {
                    query.from.is_none_or(|from| view.last_operation >= from)
                        && query.to.is_none_or(|to| view.last_operation <= to)
                }));
            }
            Ok(views)
        })
        .await?;
        Ok((views, next))
    }
}

/// What a client sees of entity `id` with history `history`.
fn view(id: EntityId, history: &[crate::model::HistoryEntry]) -> Option<EntityView> {
    let record = EntityRecord::from_history(history);
    Some(EntityView {
        id,
        last_operation: record.last_operation,
        state: record.state?,
    })
}
