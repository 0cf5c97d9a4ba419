//! The functions folder over time: loaded at start-up and again whenever it
//! changes (a debounced file watcher, or SIGHUP), every component version
//! kept in the store before anything can start on it, and versions that no
//! instance needs any more deleted.
//!
//! An instance runs on the version it started on. When that version's
//! file is replaced or deleted, the version stays in memory; after a
//! restart it is compiled again from the store on the instance's next
//! episode ([`Shared::ensure_version`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify_debouncer_mini::notify::RecursiveMode;

use super::{Engine, Shared, blocking, stored};
use crate::model::{Millis, now_millis};
use crate::runtime::FileChange;

/// How long the folder must be quiet before a change is loaded: a file
/// being copied in fires many events, and is loaded once.
const SETTLE: Duration = Duration::from_millis(300);
/// How long after a failed reload (say, the database refused the new
/// versions) it is tried again.
const RETRY: Duration = Duration::from_secs(5);

impl Engine {
    /// Loads the functions folder (again), logs what changed, and records
    /// new versions in the store. New versions are stored before they are
    /// served, so no instance is ever pinned to a version the store lacks.
    /// Returns whether a file was added or replaced.
    pub async fn load_functions(&self, dir: &Path) -> anyhow::Result<bool> {
        let (runtime, store) = (
            Arc::clone(&self.shared.runtime),
            Arc::clone(&self.shared.store),
        );
        let dir = dir.to_owned();
        let changes = blocking(move || {
            runtime.load_functions_dir(&dir, |added, current| {
                Ok(store.record_components(added, current, now_millis())?)
            })
        })
        .await?;
        for change in &changes {
            match change {
                FileChange::Skipped { .. } => tracing::warn!("{change}"),
                _ => tracing::info!("{change}"),
            }
        }
        Ok(changes
            .iter()
            .any(|change| matches!(change, FileChange::Added(_) | FileChange::Replaced { .. })))
    }

    /// Reloads the folder whenever it changes, until the process ends.
    /// Without a working file watcher (some file systems have none), the
    /// host says so and reloads on SIGHUP only.
    pub fn watch_functions(&self, dir: &Path) {
        let changed = Arc::new(tokio::sync::Notify::new());
        let signal = Arc::clone(&changed);
        let watcher = notify_debouncer_mini::new_debouncer(
            SETTLE,
            move |events: notify_debouncer_mini::DebounceEventResult| {
                let touches_wasm = events.map_or(true, |events| {
                    events
                        .iter()
                        .any(|event| event.path.extension().is_some_and(|ext| ext == "wasm"))
                });
                if touches_wasm {
                    signal.notify_one();
                }
            },
        )
        .and_then(|mut debouncer| {
            debouncer
                .watcher()
                .watch(dir, RecursiveMode::NonRecursive)?;
            Ok(debouncer)
        });
        let watcher = match watcher {
            Ok(watcher) => Some(watcher),
            Err(error) => {
                tracing::warn!(
                    "cannot watch {} ({error}); send SIGHUP to load changes",
                    dir.display()
                );
                None
            }
        };
        #[cfg(unix)]
        {
            let signal = Arc::clone(&changed);
            if let Ok(mut hangup) =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            {
                tokio::spawn(async move {
                    while hangup.recv().await.is_some() {
                        signal.notify_one();
                    }
                });
            }
        }
        let (engine, dir): (Engine, PathBuf) = (self.clone(), dir.to_owned());
        tokio::spawn(async move {
            // The watcher stops when dropped: it lives as long as this task.
            let _watcher = watcher;
            loop {
                changed.notified().await;
                match engine.load_functions(&dir).await {
                    // Instances put off for want of their orchestrator
                    // may find it now.
                    Ok(true) => engine.resume_waiting_instances().await,
                    Ok(false) => {}
                    Err(error) => {
                        tracing::error!(
                            "cannot reload {}: {error:#}; trying again in {RETRY:?}",
                            dir.display()
                        );
                        // Reading the files is itself a file event: pause,
                        // then retry without waiting for one.
                        tokio::time::sleep(RETRY).await;
                        changed.notify_one();
                    }
                }
            }
        });
    }

    /// Deletes unused component versions every `version_gc_interval`.
    pub(super) fn start_version_collector(&self) {
        let engine = self.clone();
        tokio::spawn(async move {
            let interval = engine.shared.config.version_gc_interval;
            loop {
                tokio::time::sleep(interval).await;
                let retired_before = now_millis().saturating_sub(interval.as_millis() as Millis);
                if let Err(error) = engine.collect_versions(retired_before).await {
                    tracing::error!("cannot collect unused component versions: {error:#}");
                }
            }
        });
    }

    async fn collect_versions(&self, retired_before: Millis) -> anyhow::Result<()> {
        let store = Arc::clone(&self.shared.store);
        let collected = stored(move || store.collect_components(retired_before)).await?;
        if !collected.is_empty() {
            self.shared.runtime.forget_versions(&collected);
            tracing::info!(
                "deleted {} component versions no instance needs: {}",
                collected.len(),
                collected.join(", ")
            );
        }
        Ok(())
    }
}

impl Shared {
    /// Makes `version` runnable if it is not in memory: compiles it from
    /// the store (its file may be gone or replaced). If that fails, the
    /// episode finds the version unavailable and puts the instance off.
    pub(super) fn ensure_version(&self, version: Option<&str>) {
        let Some(version) = version else { return };
        if self.runtime.has_version(version) {
            return;
        }
        let loaded = self
            .store
            .component(version)
            .map_err(anyhow::Error::from)
            .and_then(|bytes| match bytes {
                Some(bytes) => self.runtime.load_version(version, &bytes).map(|()| true),
                None => Ok(false),
            });
        match loaded {
            Ok(true) => tracing::info!("loaded component version {version} from the store"),
            Ok(false) => tracing::warn!("component version {version} is not in the store"),
            Err(error) => tracing::error!("cannot load component version {version}: {error:#}"),
        }
    }
}
