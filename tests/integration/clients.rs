//! The official Durable Functions clients against a live host: npm
//! `durable-functions` and PyPI `azure-functions-durable`, each constructed
//! from the binding data the host serves (`GET durableClient`) and driven
//! through every method by a script in `tests/clients/` (see its README).
//!
//! The clients are installed once per machine under `target/clients/`, and
//! again only when `tests/clients/package-lock.json` or `requirements.txt`
//! change. These tests need Node.js 20+ with npm, and python3 with venv.

use std::io::{Read, Seek};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;

use crate::harness::{TestHost, components};

const GREETINGS: [&str; 3] = ["Hello Tokyo!", "Hello Seattle!", "Hello London!"];
/// Longer than a script should ever take; a hung script is killed after it.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(600);

/// The JavaScript client through the client's RPC base URL, then through the
/// binding's URL templates, against one host.
#[tokio::test(flavor = "multi_thread")]
async fn the_javascript_client_works_through_the_rpc_base_url_and_the_url_templates() {
    let node_modules = js_client();
    let host = client_host(&[]).await;
    for mode in ["rpc", "webhook"] {
        run_script(&host, js_command(node_modules, &host, mode)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_python_client_works_through_the_rpc_base_url_and_the_urls_it_hands_out() {
    let python = python_client();
    let host = client_host(&[]).await;
    run_script(&host, python_command(python, &host)).await;
}

/// With a key, the binding's URLs carry it: `code=KEY` in the templates,
/// and as the password of `rpcBaseUrl` (both clients build their RPC
/// requests from it without any query string, and send a URL's password as
/// basic authentication). Both clients, in every mode, work.
#[tokio::test(flavor = "multi_thread")]
async fn with_an_access_key_both_clients_work_through_the_urls_carrying_it() {
    const KEY: &str = "cl1ent&key";
    let node_modules = js_client();
    let python = python_client();
    let host = client_host(&["--key", KEY]).await;

    let refused = host.get("/durableClient").await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "{refused:?}");
    let binding = host.get("/durableClient?code=cl1ent%26key").await;
    assert_eq!(binding.status, StatusCode::OK, "{binding:?}");
    let required = binding.body["requiredQueryStringParameters"]
        .as_str()
        .unwrap_or_else(|| panic!("no requiredQueryStringParameters in {binding:?}"));
    assert!(required.contains("code=cl1ent%26key"), "{required}");

    for mode in ["rpc", "webhook"] {
        let mut command = js_command(node_modules, &host, mode);
        command.env("REPRISE_KEY", KEY);
        run_script(&host, command).await;
    }
    let mut command = python_command(python, &host);
    command.env("REPRISE_KEY", KEY);
    run_script(&host, command).await;
}

/// `createAndWaitOnNewInstancePostUri`: a start that waits answers 200 with
/// the output when the instance completes in time, and the usual 202
/// check-status payload when it does not.
#[tokio::test(flavor = "multi_thread")]
async fn a_start_with_a_timeout_answers_the_output_or_the_check_status_payload() {
    let host = client_host(&[]).await;

    let reply = host
        .post(
            "/orchestrators/E1_HelloSequence?timeout=10&pollingInterval=1",
            "",
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    assert_eq!(reply.body, json!(GREETINGS));

    let reply = host
        .post("/orchestrators/E3_Counter/waits?timeout=1", "0")
        .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{reply:?}");
    assert_eq!(reply.body["id"], "waits");
    let status_uri = reply.body["statusQueryGetUri"].as_str().unwrap();
    assert_eq!(reply.header("location"), Some(status_uri));
    assert!(reply.header("retry-after").is_some(), "{reply:?}");
    let status = host.get_url(status_uri).await;
    assert_eq!(status.status, StatusCode::ACCEPTED, "{status:?}");
    assert_eq!(status.body["runtimeStatus"], "Running");

    // The template of the binding, filled in as a client fills it in.
    let binding = host.get("/durableClient").await;
    assert_eq!(binding.status, StatusCode::OK, "{binding:?}");
    let template = binding.body["creationUrls"]["createAndWaitOnNewInstancePostUri"]
        .as_str()
        .unwrap_or_else(|| panic!("no createAndWaitOnNewInstancePostUri in {binding:?}"));
    let url = template
        .replace("{functionName}", "E1_HelloSequence")
        .replace("[/{instanceId}]", "/waited")
        .replace("{timeoutInSeconds}", "10")
        .replace("{intervalInSeconds}", "1");
    let reply = host.post_url(&url, "").await;
    assert_eq!(reply.status, StatusCode::OK, "{url}: {reply:?}");
    assert_eq!(reply.body, json!(GREETINGS));
    assert_eq!(
        host.status("waited").await.body["runtimeStatus"],
        "Completed"
    );
}

/// A malformed wait parameter is refused before anything starts, even one
/// read only once the instance has finished.
#[tokio::test(flavor = "multi_thread")]
async fn a_start_with_a_malformed_wait_parameter_starts_nothing() {
    let host = client_host(&[]).await;
    for query in [
        "timeout=10&returnInternalServerErrorOnFailure=maybe",
        "timeout=ten",
        "pollingInterval=1",
    ] {
        let reply = host
            .post(
                &format!("/orchestrators/E1_HelloSequence/refused?{query}"),
                "",
            )
            .await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{query}: {reply:?}");
        assert_eq!(
            host.status("refused").await.status,
            StatusCode::NOT_FOUND,
            "{query} started an instance"
        );
    }
}

/// A host with what the scripts use: E1_HelloSequence, E3_Counter,
/// FetchStatus (which fails since no outgoing host is allowed), and the
/// Counter entity.
async fn client_host(args: &[&str]) -> TestHost {
    let c = components();
    TestHost::prepare(&[
        &c.hello_sequence,
        &c.counter,
        &c.http_fetch,
        &c.counter_entity,
    ])
    .with_args(args)
    .started()
    .await
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

/// `tests/clients/`: the scripts and what pins the clients.
pub(crate) fn sources() -> PathBuf {
    root().join("tests").join("clients")
}

/// `node js_client.js BASE MODE`, resolving packages from the installed client.
fn js_command(node_modules: &Path, host: &TestHost, mode: &str) -> Command {
    let mut command = Command::new("node");
    command
        .arg(sources().join("js_client.js"))
        .args([host.base.as_str(), mode])
        .env("NODE_PATH", node_modules)
        .env_remove("WEBSITE_HOSTNAME")
        .env_remove("REPRISE_KEY");
    command
}

/// `python python_client.py BASE` in the installed client's venv.
fn python_command(python: &Path, host: &TestHost) -> Command {
    let mut command = Command::new(python);
    command
        .arg(sources().join("python_client.py"))
        .arg(&host.base)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env_remove("REPRISE_KEY");
    command
}

/// Runs a client script against `host`; panics with its output, and the end
/// of the host's log, unless it succeeds.
pub(crate) async fn run_script(host: &TestHost, command: Command) {
    let described = format!("{command:?}");
    let (status, stdout, stderr) = tokio::task::spawn_blocking(move || run(command))
        .await
        .unwrap();
    if status == Some(0) {
        println!("{described}\n{stdout}{stderr}");
        return;
    }
    let log = host.log();
    let tail: Vec<&str> = log.lines().rev().take(200).collect();
    let tail: Vec<&str> = tail.into_iter().rev().collect();
    panic!(
        "{described} failed (exit code {status:?}):\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}\n--- the host's log, last {} lines ---\n{}",
        tail.len(),
        tail.join("\n")
    );
}

/// Runs `command` for at most [`SCRIPT_TIMEOUT`]; its exit code (`None` if
/// killed) and what it printed.
fn run(mut command: Command) -> (Option<i32>, String, String) {
    let mut stdout = tempfile::tempfile().unwrap();
    let mut stderr = tempfile::tempfile().unwrap();
    let mut child = command
        .stdin(Stdio::null())
        .stdout(stdout.try_clone().unwrap())
        .stderr(stderr.try_clone().unwrap())
        .spawn()
        .unwrap_or_else(|error| panic!("cannot run {command:?}: {error}"));
    let deadline = Instant::now() + SCRIPT_TIMEOUT;
    let code = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status.code();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let read = |file: &mut std::fs::File| {
        let mut text = String::new();
        file.rewind().unwrap();
        file.read_to_string(&mut text).unwrap();
        text
    };
    let mut stdout_text = read(&mut stdout);
    if code.is_none() {
        stdout_text.push_str(&format!("\n(killed after {SCRIPT_TIMEOUT:?})\n"));
    }
    (code, stdout_text, read(&mut stderr))
}

/// `target/clients/js/node_modules`, with the pinned JavaScript client.
fn js_client() -> &'static Path {
    static INSTALLED: OnceLock<PathBuf> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        require_tool("node", "the JavaScript client test runs it", Some(20));
        require_tool("npm", "it installs the JavaScript client", None);
        let dir = installed("js", &["package.json", "package-lock.json"], |dir| {
            for file in ["package.json", "package-lock.json"] {
                std::fs::copy(sources().join(file), dir.join(file)).unwrap();
            }
            let status = Command::new("npm")
                .current_dir(dir)
                .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
                .status()
                .expect("npm runs");
            assert!(
                status.success(),
                "npm ci in {} failed (it installs tests/clients/package-lock.json)",
                dir.display()
            );
        });
        dir.join("node_modules")
    })
}

/// `target/clients/python/bin/python`: a venv with the pinned Python client.
pub(crate) fn python_client() -> &'static Path {
    static INSTALLED: OnceLock<PathBuf> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        require_tool("python3", "it installs and runs the Python client", None);
        let dir = installed("python", &["requirements.txt"], |dir| {
            let status = Command::new("python3")
                .args(["-m", "venv"])
                .arg(dir)
                .status()
                .expect("python3 runs");
            assert!(
                status.success(),
                "python3 -m venv {} failed (on Debian and Ubuntu, install python3-venv)",
                dir.display()
            );
            let status = Command::new(dir.join("bin").join("python"))
                .args([
                    "-m",
                    "pip",
                    "install",
                    "--quiet",
                    "--disable-pip-version-check",
                ])
                .arg("-r")
                .arg(sources().join("requirements.txt"))
                .status()
                .expect("the venv's python runs");
            assert!(
                status.success(),
                "pip install -r tests/clients/requirements.txt into {} failed",
                dir.display()
            );
        });
        dir.join("bin").join("python")
    })
}

/// `target/clients/{name}`, (re)made by `install` unless its stamp holds the
/// digest of `inputs` (files of `tests/clients/`) as they are now.
fn installed(name: &str, inputs: &[&str], install: impl FnOnce(&Path)) -> PathBuf {
    use sha2::Digest;
    let mut digest = sha2::Sha256::new();
    for input in inputs {
        let path = sources().join(input);
        let content = std::fs::read(&path)
            .unwrap_or_else(|error| panic!("cannot read {}: {error}", path.display()));
        digest.update(input.as_bytes());
        digest.update((content.len() as u64).to_le_bytes());
        digest.update(&content);
    }
    let stamp: String = digest
        .finalize()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    let dir = root().join("target").join("clients").join(name);
    let stamp_file = dir.join(".installed-from");
    if std::fs::read_to_string(&stamp_file).is_ok_and(|found| found == stamp) {
        return dir;
    }
    eprintln!("installing the {name} client into {}", dir.display());
    if dir.exists() {
        std::fs::remove_dir_all(&dir).unwrap();
    }
    std::fs::create_dir_all(&dir).unwrap();
    install(&dir);
    // Last: a half-finished install is never taken for a finished one.
    std::fs::write(&stamp_file, stamp).unwrap();
    dir
}

/// Panics with what to install unless `program --version` runs (and, for
/// `min_major`, reports at least that major version, as `v20.1.0` or `20.1.0`).
fn require_tool(program: &str, purpose: &str, min_major: Option<u32>) {
    let output = match Command::new(program).arg("--version").output() {
        Ok(output) if output.status.success() => output,
        Ok(output) => panic!(
            "`{program} --version` failed ({purpose}): {}",
            String::from_utf8_lossy(&output.stderr)
        ),
        Err(error) => panic!(
            "the Durable Functions client tests need `{program}` on PATH ({purpose}), and it cannot be run: {error}"
        ),
    };
    let version = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    if let Some(min_major) = min_major {
        let major = version
            .trim_start_matches('v')
            .split('.')
            .next()
            .and_then(|major| major.parse::<u32>().ok());
        assert!(
            major.is_some_and(|major| major >= min_major),
            "the Durable Functions client tests need {program} {min_major} or newer ({purpose}); found {version:?}"
        );
    }
}
