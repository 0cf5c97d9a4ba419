//! `reprise serve`: wires store, runtime, engine and API together.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;

use crate::api::{self, ApiConfig};
use crate::engine::{Engine, EngineConfig};
use crate::runtime::{AllowedHosts, GuestLimits, Runtime};
use reprise_store_sqlite::SqliteStore;

/// Everything `serve` needs; the CLI fills it from flags and environment.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub functions_dir: PathBuf,
    pub database: PathBuf,
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
    let compile_cache = config
        .compile_cache
        .clone()
        .unwrap_or_else(|| config.database.with_extension("compiled"));
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
    let store = SqliteStore::open(&config.database)?;
    let engine = Engine::new(Arc::new(store), Arc::new(runtime), config.engine.clone());
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
        engine,
        ApiConfig {
            max_body_bytes: config.max_body_bytes,
            access_key: config.access_key.clone(),
            task_hub: config.task_hub.clone(),
        },
    );
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let address = listener.local_addr()?;
    // Tests and scripts wait for this exact line to learn the port.
    println!("reprise listening on http://{address}");
    tracing::info!(
        "serving {} on http://{address}{}",
        config.database.display(),
        api::BASE_PATH
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    Ok(())
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
