//! The management subcommands of `reprise` (`start`, `status`, `list`, ...):
//! a client of a running host's HTTP API. Tables for people by default,
//! `--json` for scripts; a server error is one line and exit code 1.

use std::fmt::Write as _;

use clap::{Args, Subcommand};
use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::api::BASE_PATH;

mod entity;
pub mod new;
pub mod replay;

pub use self::entity::EntityCommand;

/// Which host to talk to, and how to print.
#[derive(Debug, Args)]
pub struct Connection {
    /// The address of the host management commands talk to.
    #[arg(
        long,
        global = true,
        env = "REPRISE_URL",
        default_value = "http://127.0.0.1:7071"
    )]
    pub url: String,
    /// The access key: the one `serve` requires on every request, or the
    /// one a management command sends.
    #[arg(long, global = true, env = "REPRISE_KEY", hide_env_values = true)]
    pub key: Option<String>,
    /// Print the host's JSON instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Start an orchestration.
    Start {
        /// The orchestrator's name.
        name: String,
        /// Instance ID (a singleton); default: a fresh one.
        #[arg(long)]
        id: Option<String>,
        /// Input, as JSON.
        #[arg(long)]
        input: Option<String>,
    },
    /// Show an instance's status.
    Status {
        id: String,
        /// Also show the current generation's history.
        #[arg(long)]
        history: bool,
    },
    /// List instances, newest last.
    List {
        /// Only these statuses (comma-separated, e.g. Running,Suspended).
        #[arg(long)]
        status: Option<String>,
        /// Only IDs that start with this.
        #[arg(long)]
        prefix: Option<String>,
        /// Only instances created at or after this ISO 8601 time.
        #[arg(long)]
        from: Option<String>,
        /// Only instances created at or before this ISO 8601 time.
        #[arg(long)]
        to: Option<String>,
        /// At most this many (follows pages as needed).
        #[arg(long, default_value_t = 100)]
        top: usize,
    },
    /// Raise an event on an instance.
    Raise {
        id: String,
        event: String,
        /// Payload, as JSON (default: null).
        payload: Option<String>,
    },
    /// Terminate an instance.
    Terminate {
        id: String,
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Suspend an instance: events and results queue up until resumed.
    Suspend {
        id: String,
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Resume a suspended instance.
    Resume {
        id: String,
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Run an instance's orchestrator again with its original input.
    Restart {
        id: String,
        /// Reuse the instance ID (it must have finished) instead of a new one.
        #[arg(long)]
        same_id: bool,
    },
    /// Resume a failed instance from its last good point.
    Rewind {
        id: String,
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// List the orchestrators, activities and entities the host has loaded, with versions.
    Functions,
    /// Signal, read or list durable entities.
    #[command(subcommand)]
    Entity(EntityCommand),
    /// Delete a finished instance, or every finished one created in a range.
    Purge {
        /// The instance to delete; or give --from instead.
        #[arg(required_unless_present = "from", conflicts_with_all = ["from", "to", "status"])]
        id: Option<String>,
        /// Created at or after this ISO 8601 time.
        #[arg(long)]
        from: Option<String>,
        /// Created at or before this ISO 8601 time.
        #[arg(long)]
        to: Option<String>,
        /// Only these statuses (comma-separated).
        #[arg(long)]
        status: Option<String>,
    },
}

/// Runs `command` against the host; `Err` is the one line to print.
pub async fn run(connection: &Connection, command: ClientCommand) -> Result<String, String> {
    let client = Client::new(connection);
    let path = |id: &str, rest: &str| format!("/instances/{}{rest}", encode(id));
    let output = match command {
        ClientCommand::Start { name, id, input } => {
            let route = match &id {
                Some(id) => format!("/orchestrators/{}/{}", encode(&name), encode(id)),
                None => format!("/orchestrators/{}", encode(&name)),
            };
            let body = client
                .call(Method::POST, &route, &[], input.unwrap_or_default())
                .await?;
            (body.clone(), format!("started {}\n", text(&body["id"])))
        }
        ClientCommand::Status { id, history } => {
            let flag = history.to_string();
            // With the recorded form too: `--json` saves what `reprise
            // replay --history` replays.
            let query = [
                ("showHistory", flag.as_str()),
                ("showHistoryOutput", "true"),
                ("showReplayHistory", flag.as_str()),
            ];
            let body = client
                .call(Method::GET, &path(&id, ""), &query, String::new())
                .await?;
            let table = status_table(&body);
            (body, table)
        }
        ClientCommand::List {
            status,
            prefix,
            from,
            to,
            top,
        } => {
            let query = given([
                ("runtimeStatus", &status),
                ("instanceIdPrefix", &prefix),
                ("createdTimeFrom", &from),
                ("createdTimeTo", &to),
            ]);
            let instances = client.list("/instances", &query, top).await?;
            let table = list_table(&instances);
            (Value::Array(instances), table)
        }
        ClientCommand::Raise { id, event, payload } => {
            let route = path(&id, &format!("/raiseEvent/{}", encode(&event)));
            let body = client
                .call(Method::POST, &route, &[], payload.unwrap_or_default())
                .await?;
            (body, format!("raised {event} on {id}\n"))
        }
        ClientCommand::Terminate { id, reason } => {
            client
                .control(&id, "terminate", &reason, "terminating")
                .await?
        }
        ClientCommand::Suspend { id, reason } => {
            client
                .control(&id, "suspend", &reason, "suspending")
                .await?
        }
        ClientCommand::Resume { id, reason } => {
            client.control(&id, "resume", &reason, "resuming").await?
        }
        ClientCommand::Rewind { id, reason } => {
            client.control(&id, "rewind", &reason, "rewinding").await?
        }
        ClientCommand::Restart { id, same_id } => {
            let new_id = (!same_id).to_string();
            let query = [("restartWithNewInstanceId", new_id.as_str())];
            let body = client
                .call(Method::POST, &path(&id, "/restart"), &query, String::new())
                .await?;
            (
                body.clone(),
                format!("restarted {id} as {}\n", text(&body["id"])),
            )
        }
        ClientCommand::Functions => {
            let body = client
                .call(Method::GET, "/functions", &[], String::new())
                .await?;
            let rows: Vec<Vec<String>> = body
                .as_array()
                .into_iter()
                .flatten()
                .map(|function| {
                    let version = text(&function["version"]);
                    vec![
                        text(&function["name"]),
                        text(&function["kind"]),
                        crate::runtime::short_version(&version).to_owned(),
                        text(&function["file"]),
                    ]
                })
                .collect();
            (body, table(&["NAME", "KIND", "VERSION", "FILE"], &rows))
        }
        ClientCommand::Entity(command) => entity::run(&client, command).await?,
        ClientCommand::Purge { id: Some(id), .. } => {
            let body = client
                .call(Method::DELETE, &path(&id, ""), &[], String::new())
                .await?;
            (body, format!("purged {id}\n"))
        }
        ClientCommand::Purge {
            id: None,
            from,
            to,
            status,
        } => {
            let query = given([
                ("createdTimeFrom", &from),
                ("createdTimeTo", &to),
                ("runtimeStatus", &status),
            ]);
            let body = client
                .call(Method::DELETE, "/instances", &query, String::new())
                .await?;
            let count = body["instancesDeleted"].as_u64().unwrap_or(0);
            (body, format!("purged {count} instances\n"))
        }
    };
    let (json, table) = output;
    Ok(if connection.json {
        format!(
            "{}\n",
            serde_json::to_string_pretty(&json).unwrap_or_default()
        )
    } else {
        table
    })
}

struct Client<'a> {
    http: reqwest::Client,
    connection: &'a Connection,
}

impl Client<'_> {
    fn new(connection: &Connection) -> Client<'_> {
        Client {
            http: reqwest::Client::new(),
            connection,
        }
    }

    /// One request; the JSON body of a success, or the error line.
    async fn call(
        &self,
        method: Method,
        route: &str,
        query: &[(&str, &str)],
        body: String,
    ) -> Result<Value, String> {
        Ok(self.send(method, route, query, body, None).await?.0)
    }

    async fn send(
        &self,
        method: Method,
        route: &str,
        query: &[(&str, &str)],
        body: String,
        token: Option<&str>,
    ) -> Result<(Value, Option<String>), String> {
        let base = self.connection.url.trim_end_matches('/');
        let mut request = self
            .http
            .request(method, format!("{base}{BASE_PATH}{route}"))
            .query(query)
            .body(body);
        if let Some(key) = &self.connection.key {
            request = request.header("x-functions-key", key);
        }
        if let Some(token) = token {
            request = request.header(crate::api::CONTINUATION_HEADER, token);
        }
        let response = request
            .send()
            .await
            .map_err(|error| format!("cannot reach the host at {base}: {error}"))?;
        let status = response.status();
        let token = response
            .headers()
            .get(crate::api::CONTINUATION_HEADER)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        let bytes = response
            .bytes()
            .await
            .map_err(|error| format!("the host's answer was cut off: {error}"))?;
        let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if status.is_success() {
            Ok((body, token))
        } else {
            Err(server_error(status, &body))
        }
    }

    /// The operations that take an instance and an optional reason.
    async fn control(
        &self,
        id: &str,
        operation: &str,
        reason: &str,
        doing: &str,
    ) -> Result<(Value, String), String> {
        let route = format!("/instances/{}/{operation}", encode(id));
        self.call(Method::POST, &route, &[("reason", reason)], String::new())
            .await?;
        Ok((Value::Null, format!("{doing} {id} (accepted)\n")))
    }

    /// Up to `top` items of the listing at `route`, following
    /// continuation tokens.
    async fn list(
        &self,
        route: &str,
        query: &[(&str, &str)],
        top: usize,
    ) -> Result<Vec<Value>, String> {
        let mut instances = Vec::new();
        let mut token = None;
        loop {
            let page_size = (top - instances.len()).clamp(1, 1000).to_string();
            let mut page_query = query.to_vec();
            page_query.push(("top", &page_size));
            let (page, next) = self
                .send(
                    Method::GET,
                    route,
                    &page_query,
                    String::new(),
                    token.as_deref(),
                )
                .await?;
            instances.extend(page.as_array().cloned().unwrap_or_default());
            token = next;
            if token.is_none() || instances.len() >= top {
                instances.truncate(top);
                return Ok(instances);
            }
        }
    }
}

/// The query parameters among `options` that were given.
fn given<'a, const N: usize>(
    options: [(&'a str, &'a Option<String>); N],
) -> Vec<(&'a str, &'a str)> {
    options
        .into_iter()
        .filter_map(|(name, value)| Some((name, value.as_deref()?)))
        .collect()
}

fn server_error(status: StatusCode, body: &Value) -> String {
    let message = body["message"].as_str().unwrap_or("no details");
    format!("{status}: {message}")
}

fn encode(segment: &str) -> String {
    percent_encoding::utf8_percent_encode(segment, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// A JSON value as a person reads it: strings without quotes.
fn text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn status_table(status: &Value) -> String {
    let mut out = String::new();
    for field in [
        "instanceId",
        "name",
        "runtimeStatus",
        "input",
        "output",
        "customStatus",
        "createdTime",
        "lastUpdatedTime",
        "componentVersion",
    ] {
        let _ = writeln!(out, "{field:<17}{}", text(&status[field]));
    }
    if let Some(events) = status["historyEvents"].as_array() {
        let _ = writeln!(out, "\nhistory:");
        let rows: Vec<Vec<String>> = events
            .iter()
            .map(|event| {
                let details: Vec<String> = event
                    .as_object()
                    .into_iter()
                    .flatten()
                    .filter(|(name, _)| *name != "EventType" && *name != "Timestamp")
                    .map(|(name, value)| format!("{name}={value}"))
                    .collect();
                vec![
                    text(&event["Timestamp"]),
                    text(&event["EventType"]),
                    details.join(" "),
                ]
            })
            .collect();
        out.push_str(&table(&["TIME", "EVENT", "DETAILS"], &rows));
    }
    out
}

fn list_table(instances: &[Value]) -> String {
    let rows: Vec<Vec<String>> = instances
        .iter()
        .map(|instance| {
            [
                "instanceId",
                "name",
                "runtimeStatus",
                "createdTime",
                "lastUpdatedTime",
            ]
            .iter()
            .map(|field| text(&instance[*field]))
            .collect()
        })
        .collect();
    table(
        &["INSTANCE ID", "NAME", "STATUS", "CREATED", "UPDATED"],
        &rows,
    )
}

/// Columns padded to their widest cell.
fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers
        .iter()
        .map(|header| header.chars().count())
        .collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let headers: Vec<String> = headers.iter().map(|header| header.to_string()).collect();
    for row in std::iter::once(&headers).chain(rows) {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        let _ = writeln!(out, "{}", cells.join("  ").trim_end());
    }
    out
}

/// `reprise check FILE...`: loads each file as the host would, without a
/// host. Returns the report and whether every file would load.
pub fn check(files: &[std::path::PathBuf]) -> Result<(String, bool), String> {
    use crate::runtime::{AllowedHosts, GuestLimits, Runtime};
    let runtime = Runtime::new(GuestLimits::default(), AllowedHosts::default(), None)
        .map_err(|error| format!("cannot start the wasm runtime: {error:#}"))?;
    let mut out = String::new();
    let mut all_ok = true;
    for path in files {
        match runtime.check_file(path) {
            Ok(file) => {
                let _ = writeln!(
                    out,
                    "{}: ok, a component of the {} world",
                    path.display(),
                    file.world()
                );
                let _ = writeln!(out, "  version        {}", file.version);
                let contract = format!("reprise:orchestration@{}", file.contract);
                let _ = writeln!(out, "  contract       {contract}");
                if !file.orchestrators.is_empty() {
                    let _ = writeln!(out, "  orchestrators  {}", file.orchestrators.join(", "));
                }
                if !file.activities.is_empty() {
                    let _ = writeln!(out, "  activities     {}", file.activities.join(", "));
                }
                if !file.entities.is_empty() {
                    let _ = writeln!(out, "  entities       {}", file.entities.join(", "));
                }
            }
            Err(error) => {
                all_ok = false;
                // One line per file, however the parser formats its errors.
                let reason = format!("{error:#}");
                let reason = reason.split_whitespace().collect::<Vec<_>>().join(" ");
                let _ = writeln!(out, "{}: rejected: {reason}", path.display());
            }
        }
    }
    Ok((out, all_ok))
}
