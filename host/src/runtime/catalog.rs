//! What the runtime can run: every component version in memory, and which
//! of them the functions folder serves now.
//!
//! A version is the SHA-256 of a component's bytes, so it names one build
//! forever. New starts use the *current* version of an orchestrator (the
//! file in the folder); an instance keeps the version it started on, which
//! stays in memory (or is loaded again from the store) after its file is
//! replaced or deleted. [`Catalog::reload`] turns a scan of the folder into
//! a new catalog and the list of what changed; the old catalog stays valid
//! for whoever still holds it.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use super::contract::{ActivitiesPre, EntitiesPre, OrchestratorsPre};
use super::{FunctionFile, GuestError};

/// One compiled component version, ready to instantiate.
pub(super) struct Loaded {
    pub(super) version: String,
    /// Set if the component exports orchestrators.
    pub(super) orchestrators: Option<OrchestratorsPre>,
    pub(super) orchestrator_names: Vec<String>,
    /// Set if the component exports activities.
    pub(super) activities: Option<ActivitiesPre>,
    pub(super) activity_names: Vec<String>,
    /// Set if the component exports entities.
    pub(super) entities: Option<EntitiesPre>,
    pub(super) entity_names: Vec<String>,
}

impl Loaded {
    pub(super) fn describe(&self, path: &Path) -> FunctionFile {
        FunctionFile {
            path: path.to_owned(),
            version: self.version.clone(),
            orchestrators: self.orchestrator_names.clone(),
            activities: self.activity_names.clone(),
            entities: self.entity_names.clone(),
            contract: self.contract(),
        }
    }

    /// Whether it exports entity `name` (entity names ignore case).
    pub(super) fn exports_entity(&self, name: &str) -> bool {
        self.entity_names
            .iter()
            .any(|known| known.eq_ignore_ascii_case(name))
    }

    /// The contract version of its exports (the SDK builds all of them
    /// against one).
    fn contract(&self) -> &'static str {
        match (&self.orchestrators, &self.activities) {
            (Some(orchestrators), _) => orchestrators.version(),
            (None, Some(activities)) => activities.version(),
            (None, None) => super::contract::VERSIONS[0],
        }
    }
}

/// A file of the folder as last seen: enough to skip reading it again when
/// its size and modification time have not changed.
#[derive(Clone)]
struct Served {
    file: FunctionFile,
    fingerprint: Fingerprint,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) struct Fingerprint {
    len: u64,
    modified: Option<SystemTime>,
    /// The inode and its change time: a replacement that keeps size and
    /// modification time (`cp -p`, `rsync -a`) still changes these.
    #[cfg(unix)]
    inode: (u64, i64, i64),
}

impl Fingerprint {
    pub(super) fn of(path: &Path) -> Option<Fingerprint> {
        let metadata = std::fs::metadata(path).ok()?;
        Some(Fingerprint {
            len: metadata.len(),
            modified: metadata.modified().ok(),
            #[cfg(unix)]
            inode: {
                use std::os::unix::fs::MetadataExt;
                (metadata.ino(), metadata.ctime(), metadata.ctime_nsec())
            },
        })
    }
}

/// What a reload did to one file of the functions folder.
#[derive(Debug, Clone)]
pub enum FileChange {
    Added(FunctionFile),
    /// The file's bytes changed: new starts use `new`; instances on `old`
    /// keep it.
    Replaced {
        old: FunctionFile,
        new: FunctionFile,
    },
    /// The file is gone: its names are no longer served to new starts.
    Removed(FunctionFile),
    /// The file could not be loaded; `still_serving` is its previous
    /// version, kept so a bad deploy does not take a function away.
    Skipped {
        path: PathBuf,
        reason: String,
        still_serving: Option<FunctionFile>,
    },
}

impl fmt::Display for FileChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FileChange::Added(file) => write!(f, "loaded {}", describe(file)),
            FileChange::Replaced { old, new } => write!(
                f,
                "replaced {} (was {}; instances started on it keep it)",
                describe(new),
                super::short_version(&old.version)
            ),
            FileChange::Removed(file) => write!(
                f,
                "removed {} [{}]: no new starts; instances started on it keep it",
                file.path.display(),
                super::short_version(&file.version)
            ),
            FileChange::Skipped {
                path,
                reason,
                still_serving,
            } => {
                write!(f, "skipped {}: {reason}", path.display())?;
                if let Some(previous) = still_serving {
                    write!(
                        f,
                        "; still serving its previous version {}",
                        super::short_version(&previous.version)
                    )?;
                }
                Ok(())
            }
        }
    }
}

/// `path: A, B (activity) [sha256:0123456789ab]`.
fn describe(file: &FunctionFile) -> String {
    let activities = file
        .activities
        .iter()
        .map(|name| format!("{name} (activity)"));
    let entities = file.entities.iter().map(|name| format!("{name} (entity)"));
    let names: Vec<String> = file
        .orchestrators
        .iter()
        .cloned()
        .chain(activities)
        .chain(entities)
        .collect();
    format!(
        "{}: {} [{}, contract {}]",
        file.path.display(),
        names.join(", "),
        super::short_version(&file.version),
        file.contract
    )
}

/// The runtime's tables. Cheap to clone (compiled code is shared), and
/// replaced whole on a change, so a reader never sees half a reload.
#[derive(Clone, Default)]
pub(super) struct Catalog {
    /// Every version in memory: the current ones, and older ones that
    /// instances still run on.
    pub(super) versions: HashMap<String, Arc<Loaded>>,
    /// The folder as served, by path.
    served: BTreeMap<PathBuf, Served>,
    /// Files that could not be served, as last seen, so a scan neither
    /// reads them again (reading a file is itself a file event) nor
    /// reports them again until they change.
    skipped: BTreeMap<PathBuf, Skip>,
    /// Orchestrator name → current version.
    orchestrators: HashMap<String, String>,
    /// Activity name → current version.
    activities: HashMap<String, String>,
    /// Entity name, in lower case (entity names ignore case) → current
    /// version.
    entities: HashMap<String, String>,
}

/// Why a file is not served, and what it was when that was decided.
#[derive(Clone, PartialEq, Eq)]
struct Skip {
    fingerprint: Fingerprint,
    /// Set if it compiled (it exports a name another file serves): it is
    /// tried again on every reload, without reading it.
    version: Option<String>,
    reason: String,
}

/// What a file scanned by a reload turned out to be.
pub(super) enum Scanned {
    /// Same bytes as the version the catalog serves for this path.
    Unchanged(Fingerprint, String),
    /// New bytes, compiled (or found among the versions in memory).
    Loaded(Fingerprint, Arc<Loaded>),
    Failed(Fingerprint, String),
}

impl Catalog {
    /// The version a file is served as, if it is served and its size and
    /// modification time are still `fingerprint`.
    pub(super) fn unchanged_version(&self, path: &Path, fingerprint: Fingerprint) -> Option<&str> {
        self.served
            .get(path)
            .filter(|served| served.fingerprint == fingerprint)
            .map(|served| served.file.version.as_str())
    }

    /// How a file skipped before is to be scanned, if it has not changed
    /// since: without reading it.
    pub(super) fn unchanged_skip(&self, path: &Path, fingerprint: Fingerprint) -> Option<Scanned> {
        let skip = self
            .skipped
            .get(path)
            .filter(|skip| skip.fingerprint == fingerprint)?;
        match &skip.version {
            None => Some(Scanned::Failed(fingerprint, skip.reason.clone())),
            Some(version) => {
                // Compiled, but another file had its names; if its version
                // has left memory since, read the file again.
                let loaded = self.versions.get(version)?;
                Some(Scanned::Loaded(fingerprint, Arc::clone(loaded)))
            }
        }
    }

    pub(super) fn served_version(&self, path: &Path) -> Option<&str> {
        self.served
            .get(path)
            .map(|served| served.file.version.as_str())
    }

    /// The catalog after a scan of the folder found `scanned` (every
    /// `.wasm` file, by path), and what changed. Files whose bytes did not
    /// change keep their names; among the others, in path order, a file
    /// exporting a name another file serves is skipped.
    pub(super) fn reload(&self, scanned: BTreeMap<PathBuf, Scanned>) -> (Catalog, Vec<FileChange>) {
        let mut next = Catalog {
            versions: self.versions.clone(),
            ..Catalog::default()
        };
        let mut changes = Vec::new();
        let mut changed = Vec::new();
        for (path, scan) in scanned {
            match scan {
                Scanned::Unchanged(fingerprint, version) => {
                    let loaded = Arc::clone(&self.versions[&version]);
                    next.serve(&path, fingerprint, &loaded)
                        .expect("unchanged files never conflicted");
                }
                other => changed.push((path, other)),
            }
        }
        // Files that served before come first: a file skipped for a name
        // clash must not take the name when the serving file changes.
        changed.sort_by_key(|(path, _)| !self.served.contains_key(path));
        for (path, scan) in changed {
            let previous = self.served.get(&path).map(|served| {
                (
                    served.fingerprint,
                    Arc::clone(&self.versions[&served.file.version]),
                )
            });
            let (fingerprint, outcome, version) = match scan {
                Scanned::Loaded(fingerprint, loaded) => {
                    next.versions
                        .insert(loaded.version.clone(), Arc::clone(&loaded));
                    let outcome = next
                        .serve(&path, fingerprint, &loaded)
                        .map(|()| loaded.describe(&path));
                    (fingerprint, outcome, Some(loaded.version.clone()))
                }
                Scanned::Failed(fingerprint, reason) => (fingerprint, Err(reason), None),
                Scanned::Unchanged(..) => unreachable!("served above"),
            };
            let change = match (outcome, previous) {
                (Ok(new), None) => FileChange::Added(new),
                (Ok(new), Some((_, old))) => FileChange::Replaced {
                    old: old.describe(&path),
                    new,
                },
                (Err(reason), previous) => {
                    let still_serving = previous.and_then(|(fingerprint, old)| {
                        next.serve(&path, fingerprint, &old)
                            .ok()
                            .map(|()| old.describe(&path))
                    });
                    let skip = Skip {
                        fingerprint,
                        version,
                        reason: reason.clone(),
                    };
                    next.skipped.insert(path.clone(), skip.clone());
                    if self.skipped.get(&path) == Some(&skip) {
                        // Reported when it was first skipped.
                        continue;
                    }
                    FileChange::Skipped {
                        path,
                        reason,
                        still_serving,
                    }
                }
            };
            changes.push(change);
        }
        for (path, served) in &self.served {
            if !next.served.contains_key(path) && !next.skipped.contains_key(path) {
                changes.push(FileChange::Removed(served.file.clone()));
            }
        }
        (next, changes)
    }

    /// Serves `loaded` under `path`, unless another file serves one of its names.
    fn serve(
        &mut self,
        path: &Path,
        fingerprint: Fingerprint,
        loaded: &Arc<Loaded>,
    ) -> Result<(), String> {
        let entity_keys: Vec<String> = loaded
            .entity_names
            .iter()
            .map(|name| name.to_lowercase())
            .collect();
        let claims = [
            (
                "orchestrator",
                &loaded.orchestrator_names,
                &self.orchestrators,
            ),
            ("activity", &loaded.activity_names, &self.activities),
            ("entity", &entity_keys, &self.entities),
        ];
        for (kind, names, table) in claims {
            for name in names {
                if let Some(version) = table.get(name) {
                    let other = self
                        .served
                        .values()
                        .find(|served| &served.file.version == version)
                        .map_or_else(|| version.clone(), |s| s.file.path.display().to_string());
                    return Err(format!(
                        "{kind} '{name}' is also exported by {other}; remove one of them"
                    ));
                }
            }
        }
        for name in &loaded.orchestrator_names {
            self.orchestrators
                .insert(name.clone(), loaded.version.clone());
        }
        for name in &loaded.activity_names {
            self.activities.insert(name.clone(), loaded.version.clone());
        }
        for key in entity_keys {
            self.entities.insert(key, loaded.version.clone());
        }
        self.served.insert(
            path.to_owned(),
            Served {
                file: loaded.describe(path),
                fingerprint,
            },
        );
        Ok(())
    }

    /// The served files, in path order.
    pub(super) fn files(&self) -> Vec<FunctionFile> {
        self.served
            .values()
            .map(|served| served.file.clone())
            .collect()
    }

    /// The versions the folder serves.
    pub(super) fn current_versions(&self) -> Vec<String> {
        let mut versions: Vec<String> = self
            .served
            .values()
            .map(|served| served.file.version.clone())
            .collect();
        versions.sort();
        versions.dedup();
        versions
    }

    /// Component version `pinned` (an instance's), or else `current` (the
    /// version serving a name now); `Ok(None)` if neither names one.
    pub(super) fn pinned_or_current<'a>(
        &'a self,
        pinned: Option<&'a str>,
        current: Option<&'a str>,
    ) -> Result<Option<&'a Loaded>, GuestError> {
        let Some(version) = pinned.or(current) else {
            return Ok(None);
        };
        self.versions
            .get(version)
            .map(|loaded| Some(loaded.as_ref()))
            .ok_or_else(|| GuestError::VersionUnavailable(version.to_owned()))
    }

    pub(super) fn current_orchestrator(&self, name: &str) -> Option<&str> {
        self.orchestrators.get(name).map(String::as_str)
    }

    pub(super) fn current_activity(&self, name: &str) -> Option<&str> {
        self.activities.get(name).map(String::as_str)
    }

    pub(super) fn current_entity(&self, name: &str) -> Option<&str> {
        self.entities.get(&name.to_lowercase()).map(String::as_str)
    }

    pub(super) fn orchestrator_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.orchestrators.keys().cloned().collect();
        names.sort();
        names
    }
}
