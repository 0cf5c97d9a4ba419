//! `reprise entity signal|get|list`: durable entities through the entity
//! routes.

use clap::Subcommand;
use reqwest::Method;
use serde_json::Value;

use super::{Client, encode, given, table, text};

#[derive(Debug, Subcommand)]
pub enum EntityCommand {
    /// Send an entity an operation (it is created by its first one).
    Signal {
        /// The entity's name (any case).
        name: String,
        /// Which one.
        key: String,
        /// The operation.
        operation: String,
        /// Its input, as JSON (default: null).
        input: Option<String>,
    },
    /// Show an entity's state.
    Get { name: String, key: String },
    /// List the entities that have state, oldest first.
    List {
        /// Only entities of this name.
        name: Option<String>,
        /// Only those whose last operation was at or after this ISO 8601 time.
        #[arg(long)]
        from: Option<String>,
        /// Only those whose last operation was at or before this ISO 8601 time.
        #[arg(long)]
        to: Option<String>,
        /// At most this many (follows pages as needed).
        #[arg(long, default_value_t = 100)]
        top: usize,
    },
}

/// Runs `command`: the host's JSON, and the text for a person.
pub(super) async fn run(
    client: &Client<'_>,
    command: EntityCommand,
) -> Result<(Value, String), String> {
    let path = |name: &str, key: &str| format!("/entities/{}/{}", encode(name), encode(key));
    match command {
        EntityCommand::Signal {
            name,
            key,
            operation,
            input,
        } => {
            let route = path(&name, &key);
            let query = [("op", operation.as_str())];
            client
                .call(Method::POST, &route, &query, input.unwrap_or_default())
                .await?;
            let line = format!(
                "signalled {operation} to @{}@{key} (accepted)\n",
                name.to_lowercase()
            );
            Ok((Value::Null, line))
        }
        EntityCommand::Get { name, key } => {
            let state = client
                .call(Method::GET, &path(&name, &key), &[], String::new())
                .await?;
            let line = format!("{state}\n");
            Ok((state, line))
        }
        EntityCommand::List {
            name,
            from,
            to,
            top,
        } => {
            let route = match &name {
                Some(name) => format!("/entities/{}", encode(name)),
                None => "/entities".to_owned(),
            };
            let mut query = given([
                ("lastOperationTimeFrom", &from),
                ("lastOperationTimeTo", &to),
            ]);
            query.push(("fetchState", "true"));
            let entities = client.list(&route, &query, top).await?;
            let rows: Vec<Vec<String>> = entities
                .iter()
                .map(|entity| {
                    vec![
                        text(&entity["entityId"]["name"]),
                        text(&entity["entityId"]["key"]),
                        text(&entity["lastOperationTime"]),
                        entity["state"].to_string(),
                    ]
                })
                .collect();
            let table = table(&["NAME", "KEY", "LAST OPERATION", "STATE"], &rows);
            Ok((Value::Array(entities), table))
        }
    }
}
