//! A private PostgreSQL server for tests, started and stopped by the tests
//! themselves: read [`PostgresServer`] first.
//!
//! It runs the machine's own server binaries (`initdb`, `postgres`) and
//! client programs (`createdb`, `pg_isready`); no PostgreSQL client crate is
//! involved. They are looked up in `$REPRISE_TEST_PG_BIN`, then in the newest
//! `/usr/lib/postgresql/*/bin` (Debian), then in `pg_config --bindir`, then
//! on `PATH`. `scripts/install-test-deps` installs them on Debian.
//!
//! PostgreSQL refuses to run as root. When the tests run as root (as in CI),
//! `initdb` and `postgres` run as the `postgres` system user instead, and the
//! server's directory is handed to that user.
//!
//! A server never outlives the test process: a small `sh` watchdog stops it
//! (immediate shutdown) and removes its directory when the process that
//! started it has exited, which is how [`PostgresServer::shared`], a static
//! that is never dropped, gets cleaned up.

use std::fs::{self, File};
use std::net::{Ipv4Addr, TcpListener};
use std::os::unix::fs::{MetadataExt, chown};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use std::{env, thread};

use anyhow::{Context, bail};
use tempfile::TempDir;

/// Names a directory holding the PostgreSQL binaries, ahead of any search.
pub const BIN_DIR_ENV: &str = "REPRISE_TEST_PG_BIN";

/// The programs this crate runs; a directory without them is not a match.
const REQUIRED_PROGRAMS: [&str; 4] = ["initdb", "postgres", "createdb", "pg_isready"];
/// How long `postgres` may take to accept connections.
const READY_DEADLINE: Duration = Duration::from_secs(30);
/// How long an immediate shutdown may take before the postmaster is killed.
const STOP_DEADLINE: Duration = Duration::from_secs(10);
const POLL_INTERVAL: Duration = Duration::from_millis(10);
/// Ports are picked free, then bound by `postgres` a moment later; another
/// process may take one in between.
const START_ATTEMPTS: usize = 5;
/// Lines of the server's log quoted in errors.
const LOG_TAIL_LINES: usize = 30;

/// A private PostgreSQL server for tests: its own data directory in a temp
/// dir, a free port on 127.0.0.1, trust auth for user `postgres`, fsync off
/// (tests, not durability of the machine), synchronous_commit left on.
///
/// It listens on TCP only (no Unix socket). Dropping it stops it at once
/// (immediate shutdown, as after a crash: nothing is flushed) and removes
/// its directory.
///
/// ```no_run
/// use reprise_testing_postgres::PostgresServer;
///
/// let url = PostgresServer::shared().create_database()?;
/// assert!(url.starts_with("postgres://postgres@127.0.0.1:"));
/// # anyhow::Ok(())
/// ```
#[derive(Debug)]
pub struct PostgresServer {
    port: u16,
    /// `None` only while starting (between attempts) and once stopped.
    postmaster: Option<Child>,
    /// Stops the postmaster and removes `directory` when this process is
    /// gone; killed first when the server is stopped from here.
    watchdog: Option<Child>,
    bin_dir: PathBuf,
    /// Holds `data/` (the cluster) and `postgres.log`; removed on drop.
    directory: TempDir,
}

impl PostgresServer {
    /// Starts one (initdb + postgres), waiting until it accepts connections.
    /// Blocking.
    ///
    /// Takes about a second, nearly all of it `initdb`.
    pub fn start() -> anyhow::Result<PostgresServer> {
        let bin_dir = find_bin_dir()?;
        let server_user = server_user()?;
        let directory = server_directory(server_user)?;
        let mut server = PostgresServer {
            port: 0,
            postmaster: None,
            watchdog: None,
            bin_dir,
            directory,
        };
        // From here on, an error drops `server`, which stops whatever runs
        // and removes the directory.
        server.initdb(server_user)?;
        for attempt in 1..=START_ATTEMPTS {
            server.port = free_port()?;
            server.spawn_postmaster(server_user)?;
            match server.wait_until_ready()? {
                Readiness::Ready => return Ok(server),
                Readiness::Exited(status) => {
                    server.stop();
                    let log = server.log_tail();
                    if !(log.contains("could not bind") && attempt < START_ATTEMPTS) {
                        bail!(
                            "PostgreSQL (`postgres` on port {}) exited while starting, {status}; \
                             the end of its log:\n{log}",
                            server.port
                        );
                    }
                    // Someone took the port in the meantime: another one.
                }
            }
        }
        unreachable!("the last attempt returns")
    }

    /// The server shared by every test of this process, started on first use.
    ///
    /// It is stopped and its directory removed shortly after the test
    /// process exits (statics are never dropped; the watchdog does it).
    ///
    /// # Panics
    ///
    /// If the server cannot be started; a later call tries again.
    pub fn shared() -> &'static PostgresServer {
        static SHARED: OnceLock<PostgresServer> = OnceLock::new();
        SHARED.get_or_init(|| {
            PostgresServer::start().unwrap_or_else(|error| {
                panic!("could not start the shared PostgreSQL server for tests: {error:#}")
            })
        })
    }

    /// The TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Creates a fresh, uniquely named empty database and returns its URL
    /// `postgres://postgres@127.0.0.1:{port}/{name}`.
    ///
    /// Takes some 60 ms (`createdb` copies `template1`).
    pub fn create_database(&self) -> anyhow::Result<String> {
        static NEXT_DATABASE: AtomicU64 = AtomicU64::new(1);
        let name = format!(
            "reprise_test_{}_{}",
            std::process::id(),
            NEXT_DATABASE.fetch_add(1, Ordering::Relaxed)
        );
        self.run_client("createdb", &["-U", "postgres", &name])?;
        Ok(format!(
            "postgres://postgres@127.0.0.1:{}/{name}",
            self.port
        ))
    }

    /// Drops the database `url` names (one [`create_database`] made),
    /// ending its connections first.
    ///
    /// [`create_database`]: PostgresServer::create_database
    pub fn drop_database(&self, url: &str) -> anyhow::Result<()> {
        let name = url
            .rsplit('/')
            .next()
            .context("a database URL ends with its name")?;
        self.run_client("dropdb", &["-U", "postgres", "--force", name])
    }

    /// Runs the client program `program` with `args` against the server;
    /// an error quoting what it wrote if it fails.
    fn run_client(&self, program: &str, args: &[&str]) -> anyhow::Result<()> {
        let output = self
            .client_command(program)
            .args(args)
            .output()
            .with_context(|| format!("could not run `{program}`"))?;
        if !output.status.success() {
            bail!(
                "`{program} {}` on port {} failed, {}: {}",
                args.last().unwrap_or(&""),
                self.port,
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        Ok(())
    }

    /// Runs `sql` on the database at `url` with `psql`; returns the first
    /// column of each row it returns, as text (`NULL` as an empty string).
    pub fn query(&self, url: &str, sql: &str) -> anyhow::Result<Vec<String>> {
        let output = self
            .client_command("psql")
            .args([
                "-X",
                "-q",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-F",
                "\u{1f}",
            ])
            .args(["-d", url, "-c", sql])
            .output()
            .context("could not run `psql`")?;
        if !output.status.success() {
            bail!(
                "`psql -c {sql:?}` failed, {}: {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&output.stdout)
            .lines()
            .map(|line| line.split('\u{1f}').next().unwrap_or("").to_owned())
            .collect())
    }

    /// Stops the server at once, as a crash would: an immediate shutdown,
    /// no checkpoint (the next start recovers from its log). Connections
    /// are cut; new ones are refused until [`PostgresServer::restart`].
    pub fn crash(&mut self) {
        self.stop();
    }

    /// Starts the server again, on its port and its data (crashing it
    /// first if it runs); waits until it accepts connections (its recovery
    /// done).
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.stop();
        self.spawn_postmaster(server_user()?)?;
        match self.wait_until_ready()? {
            Readiness::Ready => Ok(()),
            Readiness::Exited(status) => bail!(
                "PostgreSQL (`postgres` on port {}) exited while restarting, {status}; \
                 the end of its log:\n{}",
                self.port,
                self.log_tail()
            ),
        }
    }

    /// PID of the postmaster (tests may want to SIGSTOP it; dropping the
    /// server resumes it to stop it).
    pub fn pid(&self) -> u32 {
        self.postmaster
            .as_ref()
            .expect("a started server has a postmaster")
            .id()
    }

    fn data_dir(&self) -> PathBuf {
        self.directory.path().join("data")
    }

    fn log_path(&self) -> PathBuf {
        self.directory.path().join("postgres.log")
    }

    /// `initdb`, `postgres`: run as `server_user`, in the server's directory.
    fn server_command(&self, program: &str, server_user: Option<Account>) -> Command {
        let mut command = Command::new(self.bin_dir.join(program));
        command
            .current_dir(self.directory.path())
            .stdin(Stdio::null());
        if let Some(account) = server_user {
            command.uid(account.uid).gid(account.gid);
        }
        command
    }

    /// Loads `pg_stat_statements` when the installation has it, so a
    /// bench can count the statements each operation costs (a database
    /// then enables it with `CREATE EXTENSION pg_stat_statements`).
    fn statement_statistics(&self) -> Vec<&'static str> {
        let library = self
            .bin_dir
            .parent()
            .map(|installation| installation.join("lib/pg_stat_statements.so"));
        if library.is_some_and(|library| library.exists()) {
            vec!["-c", "shared_preload_libraries=pg_stat_statements"]
        } else {
            Vec::new()
        }
    }

    /// `createdb`, `pg_isready`: run as whoever we are, over TCP.
    fn client_command(&self, program: &str) -> Command {
        let mut command = Command::new(self.bin_dir.join(program));
        command
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .env("PGCONNECT_TIMEOUT", "10")
            .stdin(Stdio::null());
        command
    }

    fn initdb(&self, server_user: Option<Account>) -> anyhow::Result<()> {
        let output = self
            .server_command("initdb", server_user)
            .arg("-D")
            .arg(self.data_dir())
            .args(["--no-sync", "-A", "trust", "-U", "postgres"])
            .args(["-E", "UTF8", "--locale=C.UTF-8"])
            .output()
            .with_context(|| format!("could not run {}", self.bin_dir.join("initdb").display()))?;
        if !output.status.success() {
            bail!(
                "`initdb` failed, {}:\n{}{}",
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(())
    }

    /// Spawns `postgres` on `self.port`, and its watchdog.
    fn spawn_postmaster(&mut self, server_user: Option<Account>) -> anyhow::Result<()> {
        // Appended to: a restarted server's log follows its crash.
        let log = File::options()
            .create(true)
            .append(true)
            .open(self.log_path())
            .context("could not open the server's log")?;
        let postmaster = self
            .server_command("postgres", server_user)
            .arg("-D")
            .arg(self.data_dir())
            .args([
                "-c",
                "listen_addresses=127.0.0.1",
                "-p",
                &self.port.to_string(),
            ])
            // No Unix socket: nothing to place, no path length limit.
            .args(["-k", ""])
            .args(["-c", "fsync=off", "-c", "full_page_writes=off"])
            .args(["-c", "max_connections=300"])
            .args(self.statement_statistics())
            .stdout(log.try_clone()?)
            .stderr(log)
            // Out of the terminal's process group: Ctrl-C stops the tests,
            // the watchdog stops the server.
            .process_group(0)
            .spawn()
            .with_context(|| {
                format!("could not run {}", self.bin_dir.join("postgres").display())
            })?;
        let postmaster_pid = postmaster.id();
        self.postmaster = Some(postmaster);
        self.watchdog = Some(spawn_watchdog(
            std::process::id(),
            postmaster_pid,
            self.directory.path(),
        )?);
        Ok(())
    }

    /// Waits until our postmaster says it is ready (in `postmaster.pid`, so
    /// it is ours and not whoever else listens on the port) and `pg_isready`
    /// agrees, or until it exits.
    fn wait_until_ready(&mut self) -> anyhow::Result<Readiness> {
        let deadline = Instant::now() + READY_DEADLINE;
        loop {
            let postmaster = self.postmaster.as_mut().expect("spawned");
            if let Some(status) = postmaster.try_wait()? {
                return Ok(Readiness::Exited(status));
            }
            if self.postmaster_reports_ready() && self.pg_isready()? {
                return Ok(Readiness::Ready);
            }
            if Instant::now() > deadline {
                bail!(
                    "PostgreSQL (`postgres` on port {}) did not accept connections within {:?}; \
                     the end of its log:\n{}",
                    self.port,
                    READY_DEADLINE,
                    self.log_tail()
                );
            }
            thread::sleep(POLL_INTERVAL);
        }
    }

    /// Lines 1, 4 and 8 of `postmaster.pid`: the postmaster's PID, its port,
    /// and its status.
    fn postmaster_reports_ready(&self) -> bool {
        let Ok(text) = fs::read_to_string(self.data_dir().join("postmaster.pid")) else {
            return false;
        };
        let lines: Vec<&str> = text.lines().map(str::trim).collect();
        lines.first() == Some(&self.pid().to_string().as_str())
            && lines.get(3) == Some(&self.port.to_string().as_str())
            && lines.get(7) == Some(&"ready")
    }

    fn pg_isready(&self) -> anyhow::Result<bool> {
        let status = self
            .client_command("pg_isready")
            .args(["-q", "-U", "postgres", "-d", "postgres", "-t", "5"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .context("could not run `pg_isready`")?;
        Ok(status.success())
    }

    fn log_tail(&self) -> String {
        match fs::read_to_string(self.log_path()) {
            Ok(log) => {
                let lines: Vec<&str> = log.lines().collect();
                lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
            }
            Err(error) => format!("(could not read {}: {error})", self.log_path().display()),
        }
    }

    /// Kills the watchdog, then stops the postmaster: SIGQUIT (immediate
    /// shutdown) and SIGCONT (in case a test stopped it), then SIGKILL if it
    /// takes too long.
    fn stop(&mut self) {
        if let Some(mut watchdog) = self.watchdog.take() {
            let _ = watchdog.kill();
            let _ = watchdog.wait();
        }
        let Some(mut postmaster) = self.postmaster.take() else {
            return;
        };
        // Until waited for, the PID stays ours, even if it has exited.
        if let Ok(None) = postmaster.try_wait() {
            signal(postmaster.id(), "QUIT");
            signal(postmaster.id(), "CONT");
            let deadline = Instant::now() + STOP_DEADLINE;
            while let Ok(None) = postmaster.try_wait() {
                if Instant::now() > deadline {
                    let _ = postmaster.kill();
                    break;
                }
                thread::sleep(POLL_INTERVAL);
            }
        }
        let _ = postmaster.wait();
    }
}

impl Drop for PostgresServer {
    /// Stops the server fast (immediate shutdown); then the directory goes.
    fn drop(&mut self) {
        self.stop();
    }
}

enum Readiness {
    Ready,
    Exited(ExitStatus),
}

/// A system account to run the server as.
#[derive(Debug, Clone, Copy)]
struct Account {
    uid: u32,
    gid: u32,
}

/// `None`: run as ourselves. As root: the `postgres` account.
fn server_user() -> anyhow::Result<Option<Account>> {
    let output = Command::new("id")
        .arg("-u")
        .output()
        .context("could not run `id -u`")?;
    let uid = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    if uid != "0" {
        return Ok(None);
    }
    let passwd = fs::read_to_string("/etc/passwd").context("could not read /etc/passwd")?;
    let account = passwd.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        match fields.as_slice() {
            ["postgres", _, uid, gid, ..] => Some(Account {
                uid: uid.parse().ok()?,
                gid: gid.parse().ok()?,
            }),
            _ => None,
        }
    });
    match account {
        Some(account) => Ok(Some(account)),
        None => bail!(
            "running as root, but /etc/passwd has no `postgres` user to run PostgreSQL as \
             (it refuses to run as root); the Debian package `postgresql` creates one, \
             or `useradd --system postgres`"
        ),
    }
}

/// A temp dir for the server, owned by `server_user` if there is one, which
/// must then be able to reach it.
fn server_directory(server_user: Option<Account>) -> anyhow::Result<TempDir> {
    let mut parent = env::temp_dir();
    if server_user.is_some() && !traversable_by_others(&parent) {
        parent = PathBuf::from("/tmp");
        if !traversable_by_others(&parent) {
            bail!(
                "neither {} nor /tmp can be reached by the `postgres` user \
                 (some ancestor lacks o+x); set TMPDIR to a directory it can reach",
                env::temp_dir().display()
            );
        }
    }
    let directory = tempfile::Builder::new()
        .prefix("reprise-pg-")
        .tempdir_in(&parent)
        .with_context(|| format!("could not create a temp dir in {}", parent.display()))?;
    if let Some(account) = server_user {
        chown(directory.path(), Some(account.uid), Some(account.gid)).with_context(|| {
            format!(
                "could not hand {} to the `postgres` user",
                directory.path().display()
            )
        })?;
    }
    Ok(directory)
}

fn traversable_by_others(path: &Path) -> bool {
    path.ancestors()
        .all(|ancestor| fs::metadata(ancestor).is_ok_and(|metadata| metadata.mode() & 0o001 != 0))
}

/// Binds 127.0.0.1:0 and lets go of the port it got.
fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("no free port")?;
    Ok(listener.local_addr()?.port())
}

fn find_bin_dir() -> anyhow::Result<PathBuf> {
    if let Some(dir) = env::var_os(BIN_DIR_ENV) {
        let dir = PathBuf::from(dir);
        if !has_required_programs(&dir) {
            bail!(
                "{BIN_DIR_ENV}={} lacks some of {REQUIRED_PROGRAMS:?}",
                dir.display()
            );
        }
        return Ok(dir);
    }
    if let Some(dir) = newest_debian_bin_dir() {
        return Ok(dir);
    }
    if let Ok(output) = Command::new("pg_config").arg("--bindir").output()
        && output.status.success()
    {
        let dir = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
        if has_required_programs(&dir) {
            return Ok(dir);
        }
    }
    if let Some(dir) = env::var_os("PATH")
        .iter()
        .flat_map(env::split_paths)
        .find(|dir| has_required_programs(dir))
    {
        return Ok(dir);
    }
    bail!(
        "no PostgreSQL server binaries ({REQUIRED_PROGRAMS:?}) found in ${BIN_DIR_ENV}, \
         /usr/lib/postgresql/*/bin, `pg_config --bindir` or PATH; \
         install them with scripts/install-test-deps (Debian: `apt-get install postgresql`) \
         or set {BIN_DIR_ENV} to their directory"
    )
}

/// `/usr/lib/postgresql/{version}/bin`, the highest version that has them.
fn newest_debian_bin_dir() -> Option<PathBuf> {
    fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let version: Vec<u32> = entry
                .file_name()
                .to_str()?
                .split('.')
                .map(str::parse)
                .collect::<Result<_, _>>()
                .ok()?;
            let bin = entry.path().join("bin");
            has_required_programs(&bin).then_some((version, bin))
        })
        .max()
        .map(|(_, bin)| bin)
}

fn has_required_programs(dir: &Path) -> bool {
    REQUIRED_PROGRAMS
        .iter()
        .all(|program| dir.join(program).is_file())
}

/// Sends `signal` (a name: `QUIT`) to `pid` with the shell's `kill`.
fn signal(pid: u32, signal: &str) {
    let _ = Command::new("sh")
        .args(["-c", r#"kill -s "$1" "$2" 2>/dev/null"#, "sh", signal])
        .arg(pid.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// Once `watched` has exited: immediate shutdown of `postmaster` (resumed if
/// stopped), up to 10 s for it to go (a zombie nobody reaps counts as gone),
/// SIGKILL, then `rm -rf directory`.
const WATCHDOG_SCRIPT: &str = r#"
trap '' HUP INT
watched=$1 postmaster=$2 directory=$3
while kill -0 "$watched" 2>/dev/null; do sleep 1; done
kill -QUIT "$postmaster" 2>/dev/null
kill -CONT "$postmaster" 2>/dev/null
tries=0
while kill -0 "$postmaster" 2>/dev/null; do
    grep -qs '^[0-9]* ([^)]*) Z' "/proc/$postmaster/stat" && break
    if [ "$tries" -ge 100 ]; then kill -KILL "$postmaster" 2>/dev/null; break; fi
    sleep 0.1
    tries=$((tries + 1))
done
rm -rf -- "$directory"
"#;

fn spawn_watchdog(watched: u32, postmaster: u32, directory: &Path) -> anyhow::Result<Child> {
    Command::new("sh")
        .args(["-c", WATCHDOG_SCRIPT, "reprise-pg-watchdog"])
        .args([watched.to_string(), postmaster.to_string()])
        .arg(directory)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .context("could not start the PostgreSQL watchdog (`sh`)")
}

#[cfg(test)]
mod tests;
