use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};
use std::{env, fs, thread};

use super::*;

/// Set for the child process of `shared_server_stops_when_the_test_process_exits`:
/// where `start_shared_server_and_report` writes the PID and directory.
const CHILD_REPORT_ENV: &str = "REPRISE_TEST_PG_CHILD_REPORT";

/// Runs `sql` in the database at `url` with `psql`; its unaligned output.
fn psql(server: &PostgresServer, url: &str, sql: &str) -> String {
    let output = Command::new(server.bin_dir.join("psql"))
        .args([
            "-X",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            sql,
            "-d",
            url,
        ])
        .output()
        .expect("psql runs");
    assert!(
        output.status.success(),
        "psql {url} -c {sql:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

/// Alive and not a zombie, per `/proc` (Linux).
fn process_is_running(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

fn wait_until(deadline: Duration, what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + deadline;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn started_server_serves_separate_fresh_databases() {
    let server = PostgresServer::start().unwrap();
    let first = server.create_database().unwrap();
    let second = server.create_database().unwrap();
    assert_ne!(first, second);
    let prefix = format!("postgres://postgres@127.0.0.1:{}/", server.port());
    assert!(first.starts_with(&prefix), "{first}");
    assert_eq!(psql(&server, &first, "select 1"), "1");
    assert_eq!(psql(&server, &second, "select 1"), "1");
    psql(&server, &first, "create table only_here (id int)");
    assert_eq!(
        psql(
            &server,
            &second,
            "select count(*) from pg_tables where tablename = 'only_here'"
        ),
        "0"
    );
}

#[test]
fn server_runs_without_fsync_but_with_synchronous_commit() {
    let server = PostgresServer::start().unwrap();
    let url = server.create_database().unwrap();
    assert_eq!(psql(&server, &url, "show fsync"), "off");
    assert_eq!(psql(&server, &url, "show synchronous_commit"), "on");
    assert_eq!(psql(&server, &url, "select current_user"), "postgres");
}

#[test]
fn dropping_the_server_stops_it_and_removes_its_directory() {
    let server = PostgresServer::start().unwrap();
    let pid = server.pid();
    let watchdog_pid = server.watchdog.as_ref().unwrap().id();
    let directory = server.directory.path().to_owned();
    assert!(process_is_running(pid));
    assert!(directory.join("data").is_dir());
    drop(server);
    wait_until(Duration::from_secs(30), "the postmaster is gone", || {
        !process_is_running(pid) && !process_is_running(watchdog_pid)
    });
    assert!(!directory.exists(), "{} still exists", directory.display());
}

#[test]
fn dropping_a_stopped_server_still_stops_it() {
    let server = PostgresServer::start().unwrap();
    let pid = server.pid();
    let directory = server.directory.path().to_owned();
    let status = Command::new("kill")
        .args(["-STOP", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let started = Instant::now();
    drop(server);
    assert!(
        started.elapsed() < STOP_DEADLINE,
        "took the SIGKILL fallback"
    );
    wait_until(Duration::from_secs(30), "the postmaster is gone", || {
        !process_is_running(pid)
    });
    assert!(!directory.exists(), "{} still exists", directory.display());
}

#[test]
fn shared_server_is_started_once() {
    let first = PostgresServer::shared();
    let second = PostgresServer::shared();
    assert!(std::ptr::eq(first, second));
    let url = first.create_database().unwrap();
    assert_eq!(psql(first, &url, "select 1"), "1");
}

/// Not a test of its own: the child process of
/// `shared_server_stops_when_the_test_process_exits`. Does nothing otherwise.
#[test]
fn start_shared_server_and_report() {
    let Some(report) = env::var_os(CHILD_REPORT_ENV) else {
        return;
    };
    let server = PostgresServer::shared();
    let report_text = format!("{}\n{}", server.pid(), server.directory.path().display());
    fs::write(report, report_text).unwrap();
}

#[test]
fn shared_server_stops_when_the_test_process_exits() {
    let scratch = tempfile::tempdir().unwrap();
    let report = scratch.path().join("report");
    let output = Command::new(env::current_exe().unwrap())
        .args(["--exact", "tests::start_shared_server_and_report"])
        .env(CHILD_REPORT_ENV, &report)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "child test process: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let report = fs::read_to_string(&report).expect("the child test reported its server");
    let (pid, directory) = report.split_once('\n').unwrap();
    let pid: u32 = pid.parse().unwrap();
    let directory = PathBuf::from(directory);
    // The watchdog looks once a second.
    wait_until(
        Duration::from_secs(30),
        "the watchdog stopped the server and removed its directory",
        || !process_is_running(pid) && !directory.exists(),
    );
}

#[test]
fn debian_bin_dir_is_found_when_installed() {
    if fs::metadata("/usr/lib/postgresql").is_err() {
        return;
    }
    let dir = newest_debian_bin_dir().expect("a /usr/lib/postgresql/*/bin with the programs");
    assert!(dir.starts_with("/usr/lib/postgresql"), "{}", dir.display());
    assert!(has_required_programs(&dir));
}
