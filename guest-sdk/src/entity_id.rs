//! The address of an entity: which entity function, and which one of its
//! instances.

use std::fmt;
use std::str::FromStr;

use crate::Error;
use crate::wire;

/// An entity: its name (the entity function it runs) and its key (which
/// one). Written `@name@key`, as Durable Functions writes entity instance
/// IDs.
///
/// Names are case-insensitive and keys are not, so the name is kept in
/// lower case (as Durable Functions does): two IDs are equal exactly when
/// they address the same entity, and they sort in the order the host locks
/// entities in.
///
/// ```
/// use reprise_sdk::EntityId;
///
/// let id = EntityId::new("Account", "alice");
/// assert_eq!(id.to_string(), "@account@alice");
/// assert_eq!("@ACCOUNT@alice".parse::<EntityId>().unwrap(), id);
/// assert_ne!(EntityId::new("account", "Alice"), id);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EntityId {
    name: String,
    key: String,
}

impl EntityId {
    pub fn new(name: impl AsRef<str>, key: impl Into<String>) -> EntityId {
        EntityId {
            name: name.as_ref().to_lowercase(),
            key: key.into(),
        }
    }

    /// The entity's name, in lower case.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Which entity of that name.
    pub fn key(&self) -> &str {
        &self.key
    }

    pub(crate) fn to_wire(&self) -> wire::EntityId {
        wire::EntityId {
            name: self.name.clone(),
            key: self.key.clone(),
        }
    }

    pub(crate) fn from_wire(id: wire::EntityId) -> EntityId {
        EntityId::new(id.name, id.key)
    }
}

/// `@name@key`.
impl fmt::Display for EntityId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "@{}@{}", self.name, self.key)
    }
}

/// Parses `@name@key`: the name runs up to the second `@` (so a name has
/// none), the key is the rest (and may have some).
impl FromStr for EntityId {
    type Err = Error;

    fn from_str(text: &str) -> Result<EntityId, Error> {
        let parsed = text
            .strip_prefix('@')
            .and_then(|rest| rest.split_once('@'))
            .filter(|(name, _)| !name.is_empty());
        match parsed {
            Some((name, key)) => Ok(EntityId::new(name, key)),
            None => Err(Error::new(format!(
                "'{text}' is not an entity ID: expected '@name@key'"
            ))
            .with_kind("validation")
            .non_retryable()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_may_hold_at_signs_and_be_empty() {
        let id: EntityId = "@Counter@a@b".parse().unwrap();
        assert_eq!((id.name(), id.key()), ("counter", "a@b"));
        let empty: EntityId = "@counter@".parse().unwrap();
        assert_eq!(empty.key(), "");
    }

    #[test]
    fn what_is_not_at_name_at_key_is_refused() {
        for text in ["counter@a", "@counter", "@@a", ""] {
            assert!(text.parse::<EntityId>().is_err(), "{text}");
        }
    }

    #[test]
    fn ids_sort_by_name_then_key() {
        let mut ids = [
            EntityId::new("b", "1"),
            EntityId::new("A", "2"),
            EntityId::new("a", "1"),
        ];
        ids.sort();
        let sorted: Vec<String> = ids.iter().map(EntityId::to_string).collect();
        assert_eq!(sorted, ["@a@1", "@a@2", "@b@1"]);
    }
}
