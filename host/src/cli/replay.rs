//! `reprise replay`: would this build break running instances?
//!
//! Fetches recorded histories from a host (or reads them from files saved
//! with `reprise status ID --history --json`), replays each on the new
//! component locally, and reports per instance: replays cleanly, or the
//! first thing that differs. Nothing is changed on the host.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use clap::Args;
use reqwest::Method;
use serde_json::{Value, json};

use super::{Client, Connection, encode, text};
use crate::engine::{RecordedGeneration, Verdict, check_replay};
use crate::model::HistoryEntry;
use crate::runtime::{AllowedHosts, FunctionFile, GuestLimits, Runtime, short_version};

/// Statuses whose instances may still replay: the default selection.
const IN_FLIGHT: &str = "Pending,Running,Suspended";

/// Instances fetched at most, unless `--top` says otherwise.
const DEFAULT_TOP: usize = 10_000;

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// The new build: a component file.
    #[arg(long)]
    pub wasm: PathBuf,
    /// Replay this instance (repeat for more).
    #[arg(long = "instance", conflicts_with_all = ["name", "status", "history"])]
    pub instances: Vec<String>,
    /// Only instances of this orchestrator (default: every orchestrator the
    /// build exports).
    #[arg(long, conflicts_with = "history")]
    pub name: Option<String>,
    /// Only instances in these statuses, comma-separated.
    #[arg(long, conflicts_with = "history", default_value = IN_FLIGHT)]
    pub status: String,
    /// At most this many instances.
    #[arg(long, default_value_t = DEFAULT_TOP)]
    pub top: usize,
    /// Replay a history saved with `reprise status ID --history --json`
    /// instead of asking a host (repeat for more).
    #[arg(long)]
    pub history: Vec<PathBuf>,
}

/// The report and whether every instance replays; `Err` is the one line
/// to print when nothing could be checked.
pub fn run(connection: &Connection, args: &ReplayArgs) -> Result<(String, bool), String> {
    let runtime = Runtime::new(GuestLimits::default(), AllowedHosts::default(), None)
        .map_err(|error| format!("cannot start the wasm runtime: {error:#}"))?;
    let build = runtime
        .load_file_version(&args.wasm)
        .map_err(|error| format!("{}: cannot be loaded: {error:#}", args.wasm.display()))?;
    let recorded = if args.history.is_empty() {
        fetch(connection, args, &build)?
    } else {
        read_files(&args.history)?
    };
    let mut results = Vec::with_capacity(recorded.len());
    for (done, instance) in recorded.iter().enumerate() {
        if done > 0 && done % 100 == 0 {
            eprintln!("replayed {done} of {}", recorded.len());
        }
        let verdict =
            check_replay(&runtime, &build.version, &instance.generation).map_err(|error| {
                format!(
                    "cannot replay {}: {error:#}",
                    instance.generation.instance_id
                )
            })?;
        results.push(verdict);
    }
    let all_replay = results
        .iter()
        .all(|verdict| matches!(verdict, Verdict::Replays { .. }));
    let report = if connection.json {
        json_report(&recorded, &results)
    } else {
        text_report(&build, &recorded, &results)
    };
    Ok((report, all_replay))
}

/// One instance to replay, with what the report shows of it.
struct Fetched {
    status: String,
    generation: RecordedGeneration,
}

/// The selected instances' recorded histories, from the host.
fn fetch(
    connection: &Connection,
    args: &ReplayArgs,
    build: &FunctionFile,
) -> Result<Vec<Fetched>, String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|error| error.to_string())?;
    runtime.block_on(async {
        let client = Client::new(connection);
        let ids = if args.instances.is_empty() {
            select(&client, args, build).await?
        } else {
            args.instances.clone()
        };
        let mut fetched = Vec::with_capacity(ids.len());
        for id in ids {
            let route = format!("/instances/{}", encode(&id));
            let query = [("showReplayHistory", "true"), ("showInput", "false")];
            let body = client
                .call(Method::GET, &route, &query, String::new())
                .await?;
            fetched.push(recorded(&body).map_err(|error| format!("instance {id}: {error}"))?);
        }
        Ok(fetched)
    })
}

/// IDs of the instances the flags select: in the given statuses, of the
/// given orchestrator or else of any the build exports.
async fn select(
    client: &Client<'_>,
    args: &ReplayArgs,
    build: &FunctionFile,
) -> Result<Vec<String>, String> {
    let listed = client
        .list(
            "/instances",
            &[("runtimeStatus", args.status.as_str())],
            args.top,
        )
        .await?;
    let wanted = |name: &str| match &args.name {
        Some(wanted) => wanted == name,
        None => build.orchestrators.iter().any(|exported| exported == name),
    };
    Ok(listed
        .iter()
        .filter(|instance| wanted(&text(&instance["name"])))
        .map(|instance| text(&instance["instanceId"]))
        .collect())
}

/// Saved status documents: one object, or an array of them, per file.
fn read_files(files: &[PathBuf]) -> Result<Vec<Fetched>, String> {
    let mut fetched = Vec::new();
    for path in files {
        let body = read_json(path)?;
        let documents = match body {
            Value::Array(documents) => documents,
            document => vec![document],
        };
        for document in &documents {
            fetched
                .push(recorded(document).map_err(|error| format!("{}: {error}", path.display()))?);
        }
    }
    Ok(fetched)
}

fn read_json(path: &Path) -> Result<Value, String> {
    let bytes =
        std::fs::read(path).map_err(|error| format!("cannot read {}: {error}", path.display()))?;
    serde_json::from_slice(&bytes)
        .map_err(|error| format!("{} is not JSON: {error}", path.display()))
}

/// The recorded generation in a status document fetched with
/// `showReplayHistory=true`.
fn recorded(body: &Value) -> Result<Fetched, String> {
    let missing = || {
        "it has no `replayHistory` (save it with `reprise status ID --history --json`, from a host of this version or later)".to_owned()
    };
    let history: Vec<HistoryEntry> =
        serde_json::from_value(body.get("replayHistory").cloned().ok_or_else(missing)?)
            .map_err(|error| format!("its `replayHistory` is not a recorded history: {error}"))?;
    let generation = body["generation"]
        .as_u64()
        .and_then(|number| u32::try_from(number).ok())
        .ok_or_else(missing)?;
    let input = history
        .iter()
        .find_map(|entry| match entry {
            HistoryEntry::ExecutionStarted { input, .. } => Some(input.clone()),
            _ => None,
        })
        .unwrap_or_else(|| "null".to_owned());
    Ok(Fetched {
        status: text(&body["runtimeStatus"]),
        generation: RecordedGeneration {
            instance_id: text(&body["instanceId"]),
            name: text(&body["name"]),
            generation,
            input,
            history,
        },
    })
}

fn text_report(build: &FunctionFile, recorded: &[Fetched], results: &[Verdict]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "replaying {} instance(s) on {} ({})",
        recorded.len(),
        build.path.display(),
        short_version(&build.version)
    );
    for (instance, verdict) in recorded.iter().zip(results) {
        let RecordedGeneration {
            instance_id, name, ..
        } = &instance.generation;
        let outcome = match verdict {
            Verdict::Replays { episodes } => format!("replays ({episodes} episode(s))"),
            Verdict::Breaks(reason) => format!("BREAKS: {reason}"),
        };
        let _ = writeln!(
            out,
            "{instance_id} ({name}, {}): {outcome}",
            instance.status
        );
    }
    let breaking = results
        .iter()
        .filter(|verdict| matches!(verdict, Verdict::Breaks(_)))
        .count();
    let _ = writeln!(
        out,
        "{} replay, {breaking} would break",
        results.len() - breaking
    );
    out
}

fn json_report(recorded: &[Fetched], results: &[Verdict]) -> String {
    let rows: Vec<Value> = recorded
        .iter()
        .zip(results)
        .map(|(instance, verdict)| {
            let generation = &instance.generation;
            let mut row = json!({
                "instanceId": generation.instance_id,
                "name": generation.name,
                "runtimeStatus": instance.status,
                "generation": generation.generation,
            });
            match verdict {
                Verdict::Replays { episodes } => {
                    row["replays"] = true.into();
                    row["episodes"] = (*episodes).into();
                }
                Verdict::Breaks(reason) => {
                    row["replays"] = false.into();
                    row["error"] = reason.clone().into();
                }
            }
            row
        })
        .collect();
    format!("{:#}\n", Value::Array(rows))
}
