//! A real `reprise` process on 127.0.0.1 with a free port, a real database
//! (a SQLite file in a temporary folder, or with
//! `REPRISE_TEST_DATABASE=postgres` a fresh database on a private
//! PostgreSQL server), and real compiled components, driven over HTTP.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::Value;

const BASE_PATH: &str = "/runtime/webhooks/durabletask";

/// The database backend the hosts of this test run use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// `REPRISE_TEST_DATABASE`: `sqlite` (the default) or `postgres`.
pub fn backend() -> Backend {
    match std::env::var("REPRISE_TEST_DATABASE").as_deref() {
        Ok("postgres") => Backend::Postgres,
        Ok("sqlite") | Err(_) => Backend::Sqlite,
        Ok(other) => panic!("REPRISE_TEST_DATABASE={other}: expected sqlite or postgres"),
    }
}

/// Whether this run is on SQLite; a test of SQLite itself (its file, its
/// disk) says so and passes on other backends, which have their own.
pub fn on_sqlite() -> bool {
    backend() == Backend::Sqlite
}

/// The private PostgreSQL server of this test run.
pub fn postgres() -> &'static reprise_testing_postgres::PostgresServer {
    reprise_testing_postgres::PostgresServer::shared()
}

/// `text` as an SQL string literal.
pub fn sql_text(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// Compiled guest components, built once per test run.
pub struct Components {
    pub approval: PathBuf,
    pub hello_sequence: PathBuf,
    pub fan_out_fan_in: PathBuf,
    pub http_fetch: PathBuf,
    pub monitor: PathBuf,
    pub phone_verification: PathBuf,
    pub counter: PathBuf,
    pub singleton_job: PathBuf,
    pub event_log: PathBuf,
    pub misbehaving: PathBuf,
    pub changing_v1: PathBuf,
    pub changing_v2: PathBuf,
    /// `tests/guests/legacy` built with today's SDK (its 0.1.0 build is a
    /// fixture).
    pub legacy: PathBuf,
    pub contract_features: PathBuf,
    pub counter_entity: PathBuf,
    pub bank_transfer: PathBuf,
    /// For the benches (`host/benches/`).
    #[allow(dead_code)]
    pub startup_probe: PathBuf,
}

/// Builds the samples and the test guests for wasm32-wasip2, once.
pub fn components() -> &'static Components {
    static COMPONENTS: OnceLock<Components> = OnceLock::new();
    COMPONENTS.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .unwrap()
            .to_owned();
        let target_dir = root.join("target").join("wasm");
        install_toolchain_targets(&root);
        for manifest in ["samples/Cargo.toml", "tests/guests/Cargo.toml"] {
            let status = Command::new(env!("CARGO"))
                .current_dir(&root)
                .args([
                    "build",
                    "--release",
                    "--target",
                    "wasm32-wasip2",
                    "--manifest-path",
                ])
                .arg(root.join(manifest))
                .arg("--target-dir")
                .arg(&target_dir)
                .status()
                .expect("cargo runs");
            assert!(status.success(), "building the guests in {manifest} failed");
        }
        let wasm = |name: &str| {
            let path = target_dir
                .join("wasm32-wasip2/release")
                .join(format!("{name}.wasm"));
            assert!(path.exists(), "{} was not built", path.display());
            path
        };
        Components {
            approval: wasm("approval"),
            hello_sequence: wasm("hello_sequence"),
            fan_out_fan_in: wasm("fan_out_fan_in"),
            http_fetch: wasm("http_fetch"),
            monitor: wasm("monitor"),
            phone_verification: wasm("phone_verification"),
            counter: wasm("counter"),
            singleton_job: wasm("singleton_job"),
            event_log: wasm("event_log"),
            misbehaving: wasm("misbehaving"),
            changing_v1: wasm("changing_v1"),
            changing_v2: wasm("changing_v2"),
            legacy: wasm("legacy"),
            contract_features: wasm("contract_features"),
            counter_entity: wasm("counter_entity"),
            bank_transfer: wasm("bank_transfer"),
            startup_probe: wasm("startup_probe"),
        }
    })
}

/// Adds the targets `rust-toolchain.toml` lists that the active toolchain
/// lacks. rustup installs them only with the toolchain itself, so a machine
/// that already had Rust 1.95.0 has no `wasm32-wasip2` until someone adds it.
/// (`rustup toolchain install` does not help here: under `cargo test` rustup
/// has set `RUSTUP_TOOLCHAIN`, which takes precedence over the file, and a
/// toolchain named that way is installed without the file's targets.)
/// Without rustup, the guest build below says what is missing.
pub fn install_toolchain_targets(root: &Path) {
    let file = std::fs::read_to_string(root.join("rust-toolchain.toml"))
        .expect("rust-toolchain.toml is at the repository's root");
    let Ok(installed) = Command::new("rustup")
        .current_dir(root)
        .args(["target", "list", "--installed"])
        .output()
    else {
        return;
    };
    let installed = String::from_utf8_lossy(&installed.stdout).into_owned();
    let missing: Vec<&str> = toolchain_targets(&file)
        .filter(|target| !installed.lines().any(|line| line.trim() == *target))
        .collect();
    if missing.is_empty() {
        return;
    }
    eprintln!("installing the toolchain's targets {missing:?} (rustup target add)");
    let status = Command::new("rustup")
        .current_dir(root)
        .args(["target", "add"])
        .args(&missing)
        .status()
        .expect("rustup runs");
    assert!(status.success(), "rustup target add {missing:?} failed");
}

/// The `targets = [...]` of a rust-toolchain.toml.
fn toolchain_targets(file: &str) -> impl Iterator<Item = &str> {
    file.lines()
        .filter_map(|line| line.trim().strip_prefix("targets"))
        .filter_map(|rest| rest.trim_start().strip_prefix('='))
        .flat_map(|list| list.trim().trim_matches(['[', ']']).split(','))
        .map(|target| target.trim().trim_matches('"'))
        .filter(|target| !target.is_empty())
}

/// `sha256:` and the digest of the file: the component version the host
/// gives it.
pub fn version_of(path: &Path) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(std::fs::read(path).unwrap());
    let hex: String = digest.iter().map(|byte| format!("{byte:02x}")).collect();
    format!("sha256:{hex}")
}

/// A response, read whole.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    /// The JSON body, or `Value::Null` for an empty body.
    pub body: Value,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }

    /// The `message` of an error body.
    pub fn message(&self) -> &str {
        self.body["message"]
            .as_str()
            .unwrap_or_else(|| panic!("no error message in {self:?}"))
    }
}

pub struct TestHost {
    dir: tempfile::TempDir,
    /// Extra `reprise serve` flags.
    args: Vec<String>,
    /// `--listen`; loopback with a free port unless a test says otherwise.
    listen: String,
    /// Where the database file is, if not in `dir`.
    database_dir: Option<PathBuf>,
    /// The PostgreSQL database, when the run is on PostgreSQL.
    database_url: Option<String>,
    /// Extra environment variables for the next (re)start.
    env: Vec<(String, String)>,
    child: Option<Child>,
    /// `http://127.0.0.1:PORT/runtime/webhooks/durabletask`
    pub base: String,
    client: reqwest::Client,
}

impl TestHost {
    /// A host with every sample and the event log loaded.
    pub async fn start() -> TestHost {
        TestHost::with_samples().started().await
    }

    /// A host, not started yet, with every sample and the event log.
    pub fn with_samples() -> TestHost {
        let c = components();
        TestHost::prepare(&[
            &c.approval,
            &c.monitor,
            &c.phone_verification,
            &c.counter,
            &c.singleton_job,
            &c.hello_sequence,
            &c.fan_out_fan_in,
            &c.event_log,
        ])
    }

    /// A host whose functions folder holds copies of `files`.
    pub async fn start_with(files: &[&Path]) -> TestHost {
        let mut host = TestHost::prepare(files);
        host.spawn().await;
        host
    }

    /// Starts a host made with [`TestHost::prepare`].
    pub async fn started(mut self) -> TestHost {
        self.spawn().await;
        self
    }

    /// A host not started yet, for tests of start-up itself.
    pub fn prepare(files: &[&Path]) -> TestHost {
        let dir = tempfile::tempdir().expect("can create a temporary folder");
        std::fs::create_dir(dir.path().join("functions")).unwrap();
        for file in files {
            std::fs::copy(
                file,
                dir.path().join("functions").join(file.file_name().unwrap()),
            )
            .unwrap();
        }
        TestHost {
            dir,
            args: Vec::new(),
            listen: "127.0.0.1:0".to_owned(),
            database_dir: None,
            database_url: match backend() {
                Backend::Sqlite => None,
                Backend::Postgres => Some(
                    postgres()
                        .create_database()
                        .expect("can create a PostgreSQL database"),
                ),
            },
            env: Vec::new(),
            child: None,
            base: String::new(),
            // A request never waits for ever: one sent on a kept-alive
            // connection to a host killed that instant may wait for an
            // answer that cannot come (see the chaos test); it fails instead,
            // as a request cut off by the kill.
            client: reqwest::Client::builder()
                .pool_max_idle_per_host(64)
                .timeout(Duration::from_secs(120))
                .build()
                .unwrap(),
        }
    }

    /// Adds `reprise serve` flags for the next (re)start.
    pub fn with_args(mut self, args: &[&str]) -> TestHost {
        self.args.extend(args.iter().map(|arg| arg.to_string()));
        self
    }

    /// Listens on `address` instead of `127.0.0.1:0`.
    pub fn listening_on(mut self, address: &str) -> TestHost {
        self.listen = address.to_owned();
        self
    }

    /// Sets `name` to `value` in the host's environment from the next
    /// (re)start on; `unset_env` removes it again.
    pub fn set_env(&mut self, name: &str, value: &str) {
        self.env.push((name.to_owned(), value.to_owned()));
    }

    pub fn unset_env(&mut self, name: &str) {
        self.env.retain(|(set, _)| set != name);
    }

    /// On a fresh PostgreSQL database, whatever this run's backend (for
    /// the benches).
    #[allow(dead_code)]
    pub fn on_postgres(mut self) -> TestHost {
        self.database_url = Some(
            postgres()
                .create_database()
                .expect("can create a PostgreSQL database"),
        );
        self
    }

    /// On the PostgreSQL database at `url` (a server of the test's own).
    pub fn with_database_url(mut self, url: &str) -> TestHost {
        self.database_url = Some(url.to_owned());
        self
    }

    /// The PostgreSQL database's URL, if the host uses one.
    #[allow(dead_code)]
    pub fn database_url(&self) -> Option<&str> {
        self.database_url.as_deref()
    }

    /// Uses `other`'s database: one of several hosts (PostgreSQL only).
    pub fn sharing_database_with(mut self, other: &TestHost) -> TestHost {
        self.database_url = Some(
            other
                .database_url
                .clone()
                .expect("several hosts share a PostgreSQL database"),
        );
        self
    }

    /// SIGSTOP: the host freezes (a partition, a long pause) until
    /// [`TestHost::resume`].
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// SIGCONT.
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    /// SIGTERM: the clean shutdown a supervisor asks for.
    pub fn stop(&self) {
        self.signal("-TERM");
    }

    fn signal(&self, signal: &str) {
        let pid = self.pid().expect("the host runs");
        let status = Command::new("kill")
            .args([signal, &pid.to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill {signal} failed");
    }

    /// Keeps the database file in `dir` (a small file system, say).
    pub fn with_database_in(mut self, dir: &Path) -> TestHost {
        self.database_dir = Some(dir.to_owned());
        self
    }

    /// `http://127.0.0.1:PORT`, without the API's base path.
    pub fn root_url(&self) -> &str {
        self.base.strip_suffix(BASE_PATH).unwrap_or(&self.base)
    }

    /// The value of the unlabelled metric `name` (a counter's sample name
    /// ends in `_total`) at `GET /metrics`; `None` if the host has none.
    pub async fn metric(&self, name: &str) -> Option<f64> {
        let metrics = self
            .client
            .get(format!("{}/metrics", self.root_url()))
            .send()
            .await
            .and_then(|response| response.error_for_status())
            .expect("the host serves its metrics")
            .text()
            .await
            .expect("metrics are text");
        metrics
            .lines()
            .filter_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
            .find_map(|value| value.trim().parse().ok())
    }

    /// `--db`: the PostgreSQL database's URL, or the SQLite file.
    pub fn database_arg(&self) -> std::ffi::OsString {
        match &self.database_url {
            Some(url) => url.into(),
            None => self.database().into(),
        }
    }

    /// The SQLite file the host uses (on SQLite).
    pub fn database(&self) -> PathBuf {
        self.database_dir
            .as_deref()
            .unwrap_or(self.dir.path())
            .join("reprise.db")
    }

    pub fn functions_dir(&self) -> PathBuf {
        self.dir.path().join("functions")
    }

    fn command(&self) -> Command {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("host.log"))
            .unwrap();
        // `REPRISE_HOST_BINARY` runs another build of the host (an older
        // commit's, for a before/after bench run in the same conditions).
        let binary = std::env::var_os("REPRISE_HOST_BINARY")
            .unwrap_or_else(|| env!("CARGO_BIN_EXE_reprise").into());
        let mut command = Command::new(binary);
        command
            .arg("serve")
            .arg("--listen")
            .arg(&self.listen)
            .arg("--db")
            .arg(self.database_arg())
            .arg("--functions")
            .arg(self.functions_dir())
            .args(&self.args)
            // More to see when a test fails: `REPRISE_TEST_LOG=debug`.
            .env(
                "REPRISE_LOG",
                std::env::var("REPRISE_TEST_LOG").unwrap_or_else(|_| "info".to_owned()),
            )
            // A test's own (`set_env`) last: they win.
            .envs(self.env.iter().map(|(name, value)| (name, value)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log);
        if self.database_url.is_some() && !self.args.iter().any(|arg| arg == "--compile-cache") {
            // Where it is on SQLite: beside the database file.
            command
                .arg("--compile-cache")
                .arg(self.database().with_extension("compiled"));
        }
        command
    }

    /// Runs the host to completion, expecting it to fail at start-up; returns its log.
    pub fn start_expecting_failure(&self) -> String {
        let output = self.command().output().unwrap();
        assert!(
            !output.status.success(),
            "the host was expected to refuse to start"
        );
        self.log()
    }

    async fn spawn(&mut self) {
        let mut child = self.command().spawn().expect("the reprise binary starts");
        let stdout = child.stdout.take().unwrap();
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(line)) = lines.next() {
                let _ = sender.send(line);
            }
            // Keep reading so the host never blocks on a full pipe.
            for _ in lines {}
        });
        let line = receiver
            .recv_timeout(Duration::from_secs(120))
            .unwrap_or_else(|_| panic!("the host did not start; its log:\n{}", self.log()));
        let address = line
            .strip_prefix("reprise listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
        self.base = format!("{address}{BASE_PATH}");
        self.child = Some(child);
    }

    /// SIGKILL: no shutdown, no flush, as in a crash.
    pub fn kill(&mut self) {
        self.kill_now();
        if let Some(mut child) = self.child.take() {
            child.wait().unwrap();
        }
    }

    /// Waits for the host to exit by itself; returns its exit code.
    pub async fn wait_for_exit(&mut self, timeout: Duration) -> Option<i32> {
        let child = self.child.as_mut().expect("the host was started");
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                self.child = None;
                return status.code();
            }
            assert!(
                Instant::now() < deadline,
                "the host is still running after {timeout:?}; its log:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The host's process ID, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGKILL without waiting, usable while requests are in flight.
    pub fn kill_now(&self) {
        if self.pid().is_some() {
            self.signal("-KILL");
        }
    }

    /// Starts the host again on the same database and functions folder.
    pub async fn restart(&mut self) {
        self.kill();
        self.spawn().await;
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("host.log")).unwrap_or_default()
    }

    /// `POST {base}{path}` with `body` as the raw request body.
    pub async fn post(&self, path: &str, body: &str) -> Reply {
        self.send(self.client.post(self.url(path)).body(body.to_owned()))
            .await
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send(self.client.get(self.url(path))).await
    }

    pub async fn delete(&self, path: &str) -> Reply {
        self.send(self.client.delete(self.url(path))).await
    }

    /// Any request to an absolute URL, e.g. one the host returned.
    pub async fn post_url(&self, url: &str, body: &str) -> Reply {
        self.send(self.client.post(url).body(body.to_owned())).await
    }

    pub async fn get_url(&self, url: &str) -> Reply {
        self.send(self.client.get(url)).await
    }

    /// Sends `head` (request line and headers, no body) over a raw TCP
    /// connection and returns the status code and body of the response.
    /// For requests a well-behaved client cannot make, or should not finish.
    pub fn raw_request(&self, head: &str) -> (u16, Value) {
        use std::io::{Read, Write};
        let address = self
            .base
            .trim_start_matches("http://")
            .split('/')
            .next()
            .unwrap();
        let mut stream = std::net::TcpStream::connect(address).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream.write_all(head.as_bytes()).unwrap();
        let mut response = Vec::new();
        let mut buffer = [0; 4096];
        // Read until the whole body announced by Content-Length is in.
        loop {
            let read = stream.read(&mut buffer).unwrap();
            response.extend_from_slice(&buffer[..read]);
            let text = String::from_utf8_lossy(&response).into_owned();
            if let Some((headers, body)) = text.split_once("\r\n\r\n") {
                let length = headers
                    .lines()
                    .find_map(|line| {
                        line.to_ascii_lowercase()
                            .strip_prefix("content-length: ")
                            .map(str::to_owned)
                    })
                    .and_then(|length| length.trim().parse::<usize>().ok())
                    .unwrap_or(0);
                if body.len() >= length || read == 0 {
                    let status = headers[9..12].parse().unwrap();
                    return (status, serde_json::from_str(body).unwrap_or(Value::Null));
                }
            }
            assert!(read > 0, "connection closed before a response: {text:?}");
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Reply {
        self.try_send(request).await.expect("the host answers")
    }

    /// Like `post`, but a connection failure is an `Err` (for requests racing a kill).
    pub async fn try_post(&self, path: &str, body: &str) -> Result<Reply, reqwest::Error> {
        self.try_send(self.client.post(self.url(path)).body(body.to_owned()))
            .await
    }

    async fn try_send(&self, request: reqwest::RequestBuilder) -> Result<Reply, reqwest::Error> {
        let response = request.send().await?;
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.bytes().await?;
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or_else(|error| {
                panic!(
                    "body is not JSON ({error}): {}",
                    String::from_utf8_lossy(&bytes)
                )
            })
        };
        Ok(Reply {
            status,
            headers,
            body,
        })
    }

    /// Starts `name`, optionally under `id`, and returns the new instance's ID.
    pub async fn start_instance(&self, name: &str, id: Option<&str>, input: &str) -> String {
        let path = match id {
            Some(id) => format!("/orchestrators/{name}/{id}"),
            None => format!("/orchestrators/{name}"),
        };
        let reply = self.post(&path, input).await;
        assert_eq!(reply.status, StatusCode::ACCEPTED, "{reply:?}");
        reply.body["id"].as_str().unwrap().to_owned()
    }

    pub async fn raise(&self, id: &str, event: &str, payload: &str) -> Reply {
        self.post(&format!("/instances/{id}/raiseEvent/{event}"), payload)
            .await
    }

    pub async fn status(&self, id: &str) -> Reply {
        self.get(&format!("/instances/{id}")).await
    }

    /// Polls the status until `done` holds, for at most `timeout`.
    pub async fn wait_for(
        &self,
        id: &str,
        timeout: Duration,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let reply = self.status(id).await;
            if done(&reply.body) {
                return reply.body;
            }
            if Instant::now() > deadline {
                panic!(
                    "instance {id} did not reach the expected state in {timeout:?}; last status: {}\nhost log:\n{}",
                    reply.body,
                    self.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// `GET instances/{id}?showHistory=true`: the status with the history.
    pub async fn history(&self, id: &str) -> Value {
        self.get(&format!("/instances/{id}?showHistory=true"))
            .await
            .body
    }

    /// The `EventType` of each history event of the current generation.
    pub async fn event_types(&self, id: &str) -> Vec<String> {
        event_types(&self.history(id).await)
    }

    /// Waits until the host's log contains `needle`: for effects that show
    /// only in the log, such as an episode that was put off.
    pub async fn wait_for_log(&self, needle: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.log().contains(needle) {
            assert!(
                Instant::now() < deadline,
                "the host never logged {needle:?}; host log:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The first column of every row `query` selects from the host's
    /// database, as text (the host may be running).
    pub fn database_rows(&self, query: &str) -> Vec<String> {
        if let Some(url) = &self.database_url {
            return postgres().query(url, query).unwrap();
        }
        let connection = rusqlite::Connection::open(self.database()).unwrap();
        let mut statement = connection.prepare(query).unwrap();
        statement
            .query_map([], |row| {
                Ok(match row.get::<_, rusqlite::types::Value>(0)? {
                    rusqlite::types::Value::Null => String::new(),
                    rusqlite::types::Value::Integer(number) => number.to_string(),
                    rusqlite::types::Value::Real(number) => number.to_string(),
                    rusqlite::types::Value::Text(text) => text,
                    rusqlite::types::Value::Blob(bytes) => format!("{bytes:?}"),
                })
            })
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    /// Changes the database behind the host's back, as an older host or an
    /// operator could have left it. Stop the host first.
    pub fn alter_database(&self, statement: &str) {
        if let Some(url) = &self.database_url {
            postgres().query(url, statement).unwrap();
            return;
        }
        let connection = rusqlite::Connection::open(self.database()).unwrap();
        connection.execute_batch(statement).unwrap();
    }

    /// Waits until the instance's `runtimeStatus` is `status`.
    pub async fn wait_for_status(&self, id: &str, status: &str) -> Value {
        self.wait_for(id, Duration::from_secs(30), |body| {
            body["runtimeStatus"] == status
        })
        .await
    }

    /// Polls `check` until it returns `Ok`, for at most `timeout`, then
    /// panics with `what`, the last `Err` (what was seen instead) and the
    /// host's log. A wait ends as soon as its condition holds, so give a
    /// slow machine a long `timeout`: it costs nothing when all is well.
    pub async fn wait_until<T>(
        &self,
        what: &str,
        timeout: Duration,
        mut check: impl AsyncFnMut() -> Result<T, String>,
    ) -> T {
        let deadline = Instant::now() + timeout;
        loop {
            match check().await {
                Ok(value) => return value,
                Err(seen) if Instant::now() > deadline => panic!(
                    "waited {timeout:?} for {what}; last seen: {seen}\nhost log:\n{}",
                    self.log()
                ),
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    }

    /// Waits until the `EventType`s of `id`'s current generation satisfy
    /// `done`; returns the status with the history (`showHistory=true`).
    pub async fn wait_for_history(
        &self,
        id: &str,
        what: &str,
        done: impl Fn(&[String]) -> bool,
    ) -> Value {
        self.wait_until(what, Duration::from_secs(60), async || {
            let status = self.history(id).await;
            let types = event_types(&status);
            if done(&types) {
                Ok(status)
            } else {
                Err(format!("{types:?}"))
            }
        })
        .await
    }

    /// Waits until the host's log has `count` lines that each contain
    /// every one of `needles` (an instance's ID and what happened to it,
    /// say), in any order.
    pub async fn wait_for_log_lines(&self, needles: &[&str], count: usize) {
        self.wait_until(
            &format!("{count} log lines with {needles:?}"),
            Duration::from_secs(60),
            async || {
                let log = self.log();
                let found = log
                    .lines()
                    .filter(|line| needles.iter().all(|needle| line.contains(needle)))
                    .count();
                if found >= count {
                    Ok(())
                } else {
                    Err(format!("{found} such lines"))
                }
            },
        )
        .await
    }

    /// The messages queued for `id` and not applied yet, oldest first (the
    /// store's inbox), each as its JSON: `{"type": "TimerFired", ...}`.
    /// Readable while the host runs, and after a kill.
    pub fn inbox(&self, id: &str) -> Vec<Value> {
        self.database_rows(&format!(
            "SELECT message FROM inbox WHERE instance_id = {} ORDER BY seq",
            sql_text(id)
        ))
        .iter()
        .map(|message| serde_json::from_str(message).unwrap())
        .collect()
    }

    /// Waits until `id`'s inbox holds a message of type `kind` (queued,
    /// not applied); returns the inbox.
    pub async fn wait_for_queued(&self, id: &str, kind: &str) -> Vec<Value> {
        self.wait_until(
            &format!("a {kind} message queued for {id}"),
            Duration::from_secs(60),
            async || {
                let inbox = self.inbox(id);
                if inbox.iter().any(|message| message["type"] == kind) {
                    Ok(inbox)
                } else {
                    Err(format!("inbox {inbox:?}"))
                }
            },
        )
        .await
    }

    /// When `id`'s durable timers that have not fired yet are due, in
    /// milliseconds since the Unix epoch (the store's `timers` table).
    pub fn pending_timers(&self, id: &str) -> Vec<u64> {
        self.database_rows(&format!(
            "SELECT fire_at FROM timers WHERE instance_id = {} ORDER BY fire_at",
            sql_text(id)
        ))
        .iter()
        .map(|fire_at| fire_at.parse().unwrap())
        .collect()
    }
}

impl Drop for TestHost {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A loopback port below the ephemeral range, free now. Other tests bind
/// port 0 and connect from ephemeral ports, so none can take it while a
/// host is down between a kill and its restart.
pub fn fixed_port() -> u16 {
    use std::hash::{BuildHasher, Hasher};
    let range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .unwrap_or_else(|_| "32768 60999".to_owned());
    let low: u16 = range
        .split_whitespace()
        .next()
        .and_then(|low| low.parse().ok())
        .unwrap_or(32768);
    let (first, last) = if low > 12_000 {
        (low - 10_000, low - 1)
    } else {
        (61_000, 65_000)
    };
    for _ in 0..100 {
        // A fresh random hasher per pick: different in every process.
        let random = std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish();
        let port = first + (random % u64::from(last - first + 1)) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port in {first}..={last}");
}

/// A local HTTP server for activities to call: `GET /health` answers with
/// the status `status` holds at the time, and the body `ok`. Returns the port.
pub async fn health_server(status: Arc<AtomicU16>) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let health = move || async move {
        let code = StatusCode::from_u16(status.load(Ordering::SeqCst)).unwrap();
        (code, "ok")
    };
    let app = axum::Router::new().route("/health", axum::routing::get(health));
    tokio::spawn(async move { axum::serve(listener, app).await });
    port
}

/// The `EventType` of each event of a status fetched with `showHistory=true`.
pub fn event_types(status: &Value) -> Vec<String> {
    status["historyEvents"]
        .as_array()
        .expect("the status has historyEvents")
        .iter()
        .map(|event| event["EventType"].as_str().unwrap().to_owned())
        .collect()
}
