//! `reprise serve`: wires store, runtime, engine and API together.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;

use crate::api::{self, ApiConfig};
use crate::engine::{Engine, EngineConfig};
use crate::runtime::{AllowedHosts, GuestLimits, Runtime};
use crate::store::Store;
use crate::traces::Traces;
use reprise_store_postgres::PostgresStore;
use reprise_store_sqlite::SqliteStore;

/// Everything `serve` needs; the CLI fills it from flags and environment.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub functions_dir: PathBuf,
    pub database: Database,
    pub listen: SocketAddr,
    pub engine: EngineConfig,
    pub max_body_bytes: usize,
    pub guest_limits: GuestLimits,
    /// Hosts activities may send HTTP requests to.
    pub http_hosts: AllowedHosts,
    /// Required on every request when set (`code` or `x-functions-key`).
    pub access_key: Option<String>,
    /// The one task hub this host serves, by name.
    pub task_hub: String,
    /// Where compiled components are cached; default: beside the database
    /// (`reprise.db` → `reprise.compiled/`).
    pub compile_cache: Option<PathBuf>,
    /// An OpenTelemetry collector's OTLP/HTTP base URL: traces go there.
    /// `None`: no tracing at all.
    pub otlp_endpoint: Option<String>,
}

/// Where the host keeps its state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Database {
    /// An embedded SQLite file: one host.
    Sqlite(PathBuf),
    /// A PostgreSQL database (`postgres://` URL): any number of hosts.
    Postgres(String, reprise_store_postgres::Options),
}

impl Database {
    /// `--db`: a `postgres://` or `postgresql://` URL, or else a SQLite
    /// file's path. Any other URL (`scheme://...`) is refused with a clear
    /// message rather than taken for a file in a folder named `scheme:`.
    pub fn parse(value: &str) -> Result<Database, String> {
        let scheme = value
            .split_once("://")
            .map(|(scheme, _)| scheme)
            .filter(|scheme| {
                scheme.starts_with(|c: char| c.is_ascii_alphabetic())
                    && scheme
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "+.-".contains(c))
            });
        match scheme {
            None => Ok(Database::Sqlite(PathBuf::from(value))),
            Some(scheme)
                if scheme.eq_ignore_ascii_case("postgres")
                    || scheme.eq_ignore_ascii_case("postgresql") =>
            {
                Ok(Database::Postgres(
                    value.to_owned(),
                    reprise_store_postgres::Options::default(),
                ))
            }
            Some(scheme) => Err(format!(
                "'{scheme}://' is not a database reprise can use; give a postgres:// URL or the path of a SQLite file (created if missing)"
            )),
        }
    }

    /// With `lease_ttl`: how long the other hosts of a shared database
    /// wait for a silent host before taking its work over.
    pub fn with_lease_ttl(self, lease_ttl: std::time::Duration) -> Database {
        match self {
            Database::Postgres(url, options) => Database::Postgres(
                url,
                reprise_store_postgres::Options {
                    lease_ttl,
                    ..options
                },
            ),
            sqlite => sqlite,
        }
    }

    /// Seated at `address`, this process's (bound): among the hosts of a
    /// shared database, a host restarted on its machine and address ends
    /// its previous run at once, which cannot still be serving there.
    fn seated(self, address: SocketAddr) -> Database {
        match self {
            Database::Postgres(url, options) => {
                let machine = rustix::system::uname();
                let seat = format!("{}/{address}", machine.nodename().to_string_lossy());
                Database::Postgres(
                    url,
                    reprise_store_postgres::Options {
                        seat: Some(seat),
                        ..options
                    },
                )
            }
            sqlite => sqlite,
        }
    }

    fn open(&self) -> anyhow::Result<Arc<dyn Store>> {
        Ok(match self {
            Database::Sqlite(path) => Arc::new(SqliteStore::open(path)?),
            Database::Postgres(url, options) => {
                Arc::new(PostgresStore::open(url, options.clone())?)
            }
        })
    }

    /// The default compile cache: beside a SQLite file (`reprise.db` →
    /// `reprise.compiled/`), else in the working directory.
    fn compile_cache(&self) -> PathBuf {
        match self {
            Database::Sqlite(path) => path.with_extension("compiled"),
            Database::Postgres(..) => PathBuf::from("reprise.compiled"),
        }
    }
}

impl std::fmt::Display for Database {
    /// The file, or the URL without its password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Database::Sqlite(path) => write!(f, "{}", path.display()),
            Database::Postgres(url, _) => write!(f, "{}", without_password(url)),
        }
    }
}

/// `scheme://user:password@rest` as `scheme://user:***@rest`.
fn without_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((credentials, host)) = rest.rsplit_once('@') else {
        return url.to_owned();
    };
    match credentials.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_owned(),
    }
}

/// Runs the host until the process is stopped.
pub async fn serve(config: ServeConfig) -> anyhow::Result<()> {
    if config.access_key.is_none() && !config.listen.ip().is_loopback() {
        anyhow::bail!(
            "refusing to listen on {} without an access key: anyone who can reach it could start, terminate and purge instances. Set a key with --key or REPRISE_KEY (clients send it as ?code= or the x-functions-key header), or listen on 127.0.0.1",
            config.listen
        );
    }
    if config.access_key.as_deref().is_some_and(str::is_empty) {
        anyhow::bail!("the access key must not be empty");
    }
    api::check_task_hub_name(&config.task_hub)?;
    // First: a host that cannot have its address touches nothing, and one
    // that has it knows no earlier run of it still serves there.
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let address = listener.local_addr()?;
    let database = config.database.clone().seated(address);
    // Then the database: nothing else is created if it cannot be used.
    // Opening may block (files, connections, migrations).
    let store = tokio::task::spawn_blocking(move || database.open()).await??;
    let compile_cache = config
        .compile_cache
        .clone()
        .unwrap_or_else(|| config.database.compile_cache());
    // wasmtime's cache wants an absolute path; `--db reprise.db` is relative.
    let compile_cache = std::path::absolute(&compile_cache).with_context(|| {
        format!(
            "cannot use {} as the compile cache",
            compile_cache.display()
        )
    })?;
    let runtime = Runtime::new(
        config.guest_limits.clone(),
        config.http_hosts.clone(),
        Some(&compile_cache),
    )?;
    let traces = match &config.otlp_endpoint {
        Some(endpoint) => Some(Traces::start(endpoint)?),
        None => None,
    };
    let engine = Engine::new(store, Arc::new(runtime), config.engine.clone(), traces);
    // Watching first, so no change slips between the load and the watch.
    engine.watch_functions(&config.functions_dir);
    engine.load_functions(&config.functions_dir).await?;
    if engine.orchestrator_names().is_empty() {
        tracing::warn!(
            "no orchestrators loaded from {}; build some (see README) and drop them in",
            config.functions_dir.display()
        );
    }
    let resumed = engine.resume_unfinished_work().await?;
    if resumed > 0 {
        tracing::info!("resuming {resumed} instances with queued messages");
    }
    engine.start_background_work();

    let app = api::router(
        engine.clone(),
        ApiConfig {
            max_body_bytes: config.max_body_bytes,
            access_key: config.access_key.clone(),
            task_hub: config.task_hub.clone(),
        },
    );
    // Tests and scripts wait for this exact line to learn the port.
    println!("reprise listening on http://{address}");
    tracing::info!(
        "serving {} on http://{address}{}",
        config.database,
        api::BASE_PATH
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    // Other hosts of a shared database take over at once.
    engine.leave().await
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .expect("can install a SIGTERM handler");
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
    tracing::info!("shutting down");
}

#[cfg(test)]
mod tests {
    use super::without_password;

    #[test]
    fn a_logged_database_url_hides_its_password_only() {
        assert_eq!(
            without_password("postgres://reprise:s3cr:et@db:5432/reprise"),
            "postgres://reprise:***@db:5432/reprise"
        );
        assert_eq!(
            without_password("postgres://postgres@127.0.0.1:5432/reprise"),
            "postgres://postgres@127.0.0.1:5432/reprise"
        );
        assert_eq!(
            without_password("postgresql://db/reprise"),
            "postgresql://db/reprise"
        );
    }
}
