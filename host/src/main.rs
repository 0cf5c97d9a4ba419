//! The `reprise` command. Thin: parses arguments and calls the library.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use std::time::Duration;

use reprise_host::cli::new::NewArgs;
use reprise_host::cli::replay::ReplayArgs;
use reprise_host::cli::{ClientCommand, Connection};
use reprise_host::engine::{EngineConfig, StepLimits};
use reprise_host::runtime::{AllowedHosts, GuestLimits};
use reprise_host::server::{Database, ServeConfig, serve};

/// mimalloc: the host allocates many short-lived buffers per request and
/// episode (JSON, SQL rows, guest stores), across threads.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Reprise runs durable orchestrators compiled to WebAssembly components.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    connection: Connection,
    /// How log lines (on stderr) are written: `text` for people, `json`
    /// (one object per line, with the fields of the instance, orchestrator,
    /// version and generation an episode's lines are about) for log stores.
    #[arg(
        long,
        global = true,
        env = "REPRISE_LOG_FORMAT",
        default_value = "text"
    )]
    log_format: LogFormat,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

/// Logs to stderr, filtered by `REPRISE_LOG` (an `EnvFilter`, default
/// `info`), in `format`.
fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("REPRISE_LOG")
        .unwrap_or_else(|_| "info".into());
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => logs.init(),
        // The line's own fields at the top level, and under `span` those
        // of the span it is in (an episode's instance, orchestrator...).
        LogFormat::Json => logs
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .init(),
    }
}

#[derive(Subcommand)]
enum Command {
    /// Load the orchestrators in the functions folder and serve the HTTP API.
    Serve(Box<ServeArgs>),
    /// Check component files before deploying them: do they load, and what
    /// do they export? Exit code 1 if any would be rejected.
    Check {
        /// `.wasm` files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Create a new orchestrator crate: an orchestrator, an activity,
    /// tests, and a README with the build and deploy commands.
    New(NewArgs),
    /// Replay recorded histories on a new build before deploying it: does
    /// every instance take its recorded actions again? Exit code 1 if any
    /// would break, 2 if they could not be checked.
    Replay(ReplayArgs),
    #[command(flatten)]
    Client(ClientCommand),
}

#[derive(Args)]
struct ServeArgs {
    /// Folder of orchestrator components (`*.wasm`), loaded at start.
    #[arg(long, env = "REPRISE_FUNCTIONS", default_value = "./functions")]
    functions: PathBuf,
    /// Where state is kept: a SQLite file (created if missing; one host),
    /// or a PostgreSQL database as a `postgres://user:password@host:port/name`
    /// URL (PostgreSQL 15 or later; any number of hosts; the schema is
    /// created by the first host).
    #[arg(long, env = "REPRISE_DB", default_value = "./reprise.db", value_parser = Database::parse)]
    db: Database,
    /// Address to listen on. Port 0 picks a free port.
    #[arg(long, env = "REPRISE_LISTEN", default_value = "127.0.0.1:7071")]
    listen: SocketAddr,
    /// Episodes that may be in progress at once (default: four per CPU).
    /// An episode spends much of its time waiting for its group commit, so
    /// more than one per core; but fewer episodes take more events each.
    #[arg(long, env = "REPRISE_WORKERS")]
    workers: Option<usize>,
    /// Activities that may run at once (they mostly wait: on I/O, on
    /// their commit).
    #[arg(long, env = "REPRISE_ACTIVITY_WORKERS", default_value_t = 32)]
    activity_workers: usize,
    /// Seconds one activity call may run before it fails as timed out.
    #[arg(long, env = "REPRISE_ACTIVITY_TIMEOUT_SECS", default_value_t = 300.0)]
    activity_timeout_secs: f64,
    /// Largest request body accepted, in bytes; larger ones get 413.
    #[arg(long, env = "REPRISE_MAX_BODY_BYTES", default_value_t = 1 << 20)]
    max_body_bytes: usize,
    /// Fuel (about one unit per wasm instruction) an orchestrator may burn in one step.
    #[arg(long, env = "REPRISE_FUEL_PER_STEP", default_value_t = GuestLimits::default().fuel_per_step)]
    fuel_per_step: u64,
    /// A host activities may send HTTP requests to, as HOST or HOST:PORT
    /// (repeat for more; `*` allows any). Without one, activities get no
    /// network.
    #[arg(
        long = "allow-http-host",
        env = "REPRISE_ALLOW_HTTP_HOSTS",
        value_delimiter = ','
    )]
    allow_http_hosts: Vec<String>,
    /// Folder for compiled components, so restarts skip compiling them
    /// (default: beside the database, `reprise.db` → `reprise.compiled/`).
    #[arg(long, env = "REPRISE_COMPILE_CACHE")]
    compile_cache: Option<PathBuf>,
    /// Orchestrator executions kept alive between episodes, so an event
    /// costs one step instead of a replay; least recently used ones are
    /// dropped beyond this (and replay on their next event). 0 disables.
    #[arg(long, env = "REPRISE_WARM_EXECUTIONS", default_value_t = 4096)]
    warm_executions: usize,
    /// Linear memory the warm executions may have in all, in MiB; least
    /// recently used ones are dropped beyond it. (A Rust guest has about
    /// 1 MiB, of which it touches a tenth.)
    #[arg(long, env = "REPRISE_WARM_MEMORY_MIB", default_value_t = 4096)]
    warm_memory_mib: usize,
    /// How often component versions that no instance needs are deleted
    /// from the store, in seconds; a version is kept at least this long
    /// after its file was replaced or removed.
    #[arg(long, env = "REPRISE_VERSION_GC_SECS", default_value_t = 300)]
    version_gc_secs: u64,
    /// With PostgreSQL: seconds a host that stops renewing its lease (it
    /// died, or is cut off) keeps its instances, timers and activities
    /// before the other hosts take them over. It renews every third of
    /// this.
    #[arg(long, env = "REPRISE_LEASE_TTL_SECS", default_value_t = 10.0)]
    lease_ttl_secs: f64,
    /// Instances that may wait for a worker; beyond this, starts and
    /// events get 503 with Retry-After instead of piling up.
    #[arg(long, env = "REPRISE_MAX_BACKLOG", default_value_t = 100_000)]
    max_backlog: usize,
    /// Actions (activities, timers, sub-orchestrations, sent events) one
    /// orchestrator step may take; a step with more fails its instance.
    #[arg(long, env = "REPRISE_MAX_ACTIONS_PER_STEP", default_value_t = StepLimits::default().max_actions)]
    max_actions_per_step: usize,
    /// Bytes of custom status an orchestrator may set; more fails its instance.
    #[arg(long, env = "REPRISE_MAX_CUSTOM_STATUS_BYTES", default_value_t = StepLimits::default().max_custom_status_bytes)]
    max_custom_status_bytes: usize,
    /// Bytes of one payload an orchestrator hands on (an activity's input,
    /// a sent event, its output...); more fails its instance. An activity
    /// output beyond it fails that activity.
    #[arg(long, env = "REPRISE_MAX_PAYLOAD_BYTES", default_value_t = StepLimits::default().max_payload_bytes)]
    max_payload_bytes: usize,
    /// Entries one generation's history may have; more fails its instance
    /// (an eternal orchestration continues as new to start afresh).
    #[arg(long, env = "REPRISE_MAX_HISTORY_ENTRIES", default_value_t = StepLimits::default().max_history_entries)]
    max_history_entries: usize,
    /// The task hub's name, as Durable Functions clients name it: the
    /// `taskHub` they send must be this one (or none).
    #[arg(long, env = "REPRISE_TASK_HUB", default_value = "reprise")]
    task_hub: String,
    /// An OpenTelemetry collector's OTLP/HTTP base URL
    /// (`http://localhost:4318`): each instance's trace is exported there,
    /// spans for its life, episodes, activities, timers and
    /// sub-orchestrations. Without it, nothing is traced.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    otlp_endpoint: Option<String>,
    /// Memory one orchestrator instance may use, in MiB.
    #[arg(long, env = "REPRISE_GUEST_MEMORY_MIB", default_value_t = GuestLimits::default().memory_bytes >> 20)]
    guest_memory_mib: usize,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    match cli.command {
        Command::Serve(args) => run_serve(&cli.connection, *args, cli.log_format),
        Command::Client(command) => run_client(&cli.connection, command),
        Command::New(args) => finish(
            reprise_host::cli::new::run(&args).map(|report| (report, true)),
            1,
        ),
        Command::Replay(args) => finish(reprise_host::cli::replay::run(&cli.connection, &args), 2),
        Command::Check { files } => finish(reprise_host::cli::check(&files), 1),
    }
}

/// Prints a command's report: exit code 0 when all was well, 1 when the
/// report names a problem, `cannot_run` (after one error line) when the
/// command could not do its work.
fn finish(result: Result<(String, bool), String>, cannot_run: u8) -> std::process::ExitCode {
    match result {
        Ok((report, all_ok)) => {
            print!("{report}");
            if all_ok {
                std::process::ExitCode::SUCCESS
            } else {
                std::process::ExitCode::FAILURE
            }
        }
        Err(line) => {
            eprintln!("error: {line}");
            std::process::ExitCode::from(cannot_run)
        }
    }
}

/// Why `reprise serve` cannot serve, as one line in the log's format (a
/// log store reading JSON lines gets this one too); exit code 1.
fn serve_failed(format: LogFormat, message: &str) -> std::process::ExitCode {
    match format {
        LogFormat::Text => eprintln!("error: {message}"),
        LogFormat::Json => tracing::error!(error = message, "cannot serve"),
    }
    std::process::ExitCode::FAILURE
}

/// `reprise serve`.
fn run_serve(
    connection: &Connection,
    args: ServeArgs,
    format: LogFormat,
) -> std::process::ExitCode {
    let cores = std::thread::available_parallelism().map_or(1, |cores| cores.get());
    let workers = args.workers.unwrap_or(4 * cores);
    let Ok(lease_ttl) = Duration::try_from_secs_f64(args.lease_ttl_secs) else {
        return serve_failed(
            format,
            "--lease-ttl-secs must be a positive number of seconds",
        );
    };
    let Ok(activity_timeout) = Duration::try_from_secs_f64(args.activity_timeout_secs) else {
        return serve_failed(
            format,
            "--activity-timeout-secs must be a positive number of seconds",
        );
    };
    let config = ServeConfig {
        functions_dir: args.functions,
        database: args.db.with_lease_ttl(lease_ttl),
        listen: args.listen,
        engine: EngineConfig {
            workers,
            activity_workers: args.activity_workers,
            activity_timeout,
            warm_executions: args.warm_executions,
            warm_memory_bytes: args.warm_memory_mib << 20,
            version_gc_interval: Duration::from_secs(args.version_gc_secs.max(1)),
            max_backlog: args.max_backlog,
            step_limits: StepLimits {
                max_actions: args.max_actions_per_step,
                max_custom_status_bytes: args.max_custom_status_bytes,
                max_payload_bytes: args.max_payload_bytes,
                max_history_entries: args.max_history_entries,
            },
        },
        max_body_bytes: args.max_body_bytes,
        http_hosts: AllowedHosts::new(args.allow_http_hosts),
        access_key: connection.key.clone(),
        task_hub: args.task_hub,
        compile_cache: args.compile_cache,
        otlp_endpoint: args.otlp_endpoint.filter(|endpoint| !endpoint.is_empty()),
        guest_limits: GuestLimits {
            fuel_per_step: args.fuel_per_step,
            memory_bytes: args.guest_memory_mib << 20,
            // Every warm execution, running episode (by a worker or
            // direct) and activity, and room for executions waiting for
            // their commit and for loading components.
            instances: (args.warm_executions + 2 * workers + args.activity_workers + 256) as u32,
        },
    };
    let result = tokio::runtime::Runtime::new()
        .map_err(anyhow::Error::from)
        .and_then(|runtime| runtime.block_on(serve(config)));
    if let Err(error) = result {
        // One line a person can act on, causes included.
        return serve_failed(format, &format!("{error:#}"));
    }
    std::process::ExitCode::SUCCESS
}

/// A management subcommand: one request (or a few), printed.
fn run_client(connection: &Connection, command: ClientCommand) -> std::process::ExitCode {
    let result = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|error| error.to_string())
        .and_then(|runtime| runtime.block_on(reprise_host::cli::run(connection, command)));
    match result {
        Ok(output) => {
            print!("{output}");
            std::process::ExitCode::SUCCESS
        }
        Err(line) => {
            eprintln!("error: {line}");
            std::process::ExitCode::FAILURE
        }
    }
}
