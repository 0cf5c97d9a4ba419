//! `reprise new`: a ready orchestrator crate in one command, as `cargo new`
//! writes a ready binary crate.
//!
//! The crate depends on the SDK by path (the SDK this binary was built
//! from, or `--sdk-path`) or by git (`--sdk-git`, optionally `--sdk-rev`);
//! the SDK is not on crates.io yet. It pins the toolchain this repository
//! pins, with the wasm target, so `cargo build` and `cargo test` work in it
//! as they do here.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use clap::Args;

/// The toolchain file of the repository the binary was built from: the
/// generated crate builds with the same toolchain and targets.
const TOOLCHAIN: &str = include_str!("../../../rust-toolchain.toml");

/// The generated `src/lib.rs`: an orchestrator, an activity, and tests.
const LIB_RS: &str = include_str!("new/lib.rs.template");

/// The generated `README.md`; `{crate}` and `{wasm}` are filled in.
const README: &str = include_str!("new/README.md.template");

#[derive(Debug, Args)]
pub struct NewArgs {
    /// The folder to create; its name is the crate's name.
    pub path: PathBuf,
    /// Depend on the SDK in this folder (a checkout's `guest-sdk`).
    /// Default: the SDK this `reprise` was built from.
    #[arg(long, conflicts_with = "sdk_git")]
    pub sdk_path: Option<PathBuf>,
    /// Depend on the SDK from this git repository instead.
    #[arg(long)]
    pub sdk_git: Option<String>,
    /// With `--sdk-git`: a tag, branch or commit.
    #[arg(long, requires = "sdk_git")]
    pub sdk_rev: Option<String>,
}

/// Writes the crate; the lines to print, or the one line of an error.
pub fn run(args: &NewArgs) -> Result<String, String> {
    let name = crate_name(&args.path)?;
    let sdk = sdk_dependency(args)?;
    if args.path.exists()
        && std::fs::read_dir(&args.path)
            .map_err(|error| format!("cannot read {}: {error}", args.path.display()))?
            .next()
            .is_some()
    {
        return Err(format!(
            "{} already exists and is not empty",
            args.path.display()
        ));
    }
    let wasm = format!("{}.wasm", name.replace('-', "_"));
    let files = [
        ("Cargo.toml", cargo_toml(&name, &sdk)),
        ("rust-toolchain.toml", TOOLCHAIN.to_owned()),
        (".gitignore", "/target\n".to_owned()),
        ("src/lib.rs", LIB_RS.to_owned()),
        (
            "README.md",
            README.replace("{crate}", &name).replace("{wasm}", &wasm),
        ),
    ];
    for (relative, contents) in &files {
        write_file(&args.path.join(relative), contents)?;
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "created {} (orchestrator crate `{name}`)",
        args.path.display()
    );
    let _ = writeln!(out, "  test:   cd {} && cargo test", args.path.display());
    let _ = writeln!(
        out,
        "  build:  cargo build --target wasm32-wasip2 --release  → target/wasm32-wasip2/release/{wasm}"
    );
    let _ = writeln!(
        out,
        "  deploy: copy the .wasm into the host's functions folder"
    );
    Ok(out)
}

/// The crate name: the folder's name, if Cargo would take it.
fn crate_name(path: &Path) -> Result<String, String> {
    let name = path
        .file_name()
        .and_then(|name| name.to_str())
        .ok_or_else(|| format!("{} does not end in a folder name", path.display()))?;
    let valid = name.starts_with(|first: char| first.is_ascii_alphabetic())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !valid {
        return Err(format!(
            "'{name}' cannot be a crate name: use letters, digits, '-' and '_', starting with a letter"
        ));
    }
    Ok(name.to_ascii_lowercase())
}

/// The `reprise-sdk = ...` dependency line's value.
fn sdk_dependency(args: &NewArgs) -> Result<String, String> {
    if let Some(url) = &args.sdk_git {
        return Ok(match &args.sdk_rev {
            Some(rev) => format!(
                "{{ git = {}, rev = {} }}",
                toml_string(url),
                toml_string(rev)
            ),
            None => format!("{{ git = {} }}", toml_string(url)),
        });
    }
    let folder = match &args.sdk_path {
        Some(folder) => folder.clone(),
        None => built_from_sdk().ok_or_else(|| {
            "the SDK this reprise was built from is not on this machine; give --sdk-path (a checkout's guest-sdk folder) or --sdk-git".to_owned()
        })?,
    };
    let folder = std::fs::canonicalize(&folder)
        .map_err(|error| format!("--sdk-path {}: {error}", folder.display()))?;
    if !folder.join("Cargo.toml").is_file() {
        return Err(format!(
            "{} is not the SDK's folder (it has no Cargo.toml)",
            folder.display()
        ));
    }
    let folder = folder
        .to_str()
        .ok_or_else(|| format!("{} is not valid UTF-8", folder.display()))?;
    Ok(format!("{{ path = {} }}", toml_string(folder)))
}

/// The `guest-sdk` folder of the checkout this binary was built from, if
/// it is still there.
fn built_from_sdk() -> Option<PathBuf> {
    let folder = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()?
        .join("guest-sdk");
    folder.join("Cargo.toml").is_file().then_some(folder)
}

/// A TOML basic string.
fn toml_string(value: &str) -> String {
    serde_json::Value::from(value).to_string()
}

fn cargo_toml(name: &str, sdk: &str) -> String {
    format!(
        r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2024"
publish = false

# A component is a cdylib: `cargo build --target wasm32-wasip2` makes the
# `.wasm` the host loads. `cargo test` runs the tests natively.
[lib]
crate-type = ["cdylib"]

[dependencies]
reprise-sdk = {sdk}
serde = {{ version = "1", features = ["derive"] }}
serde_json = "1"

# Small, fast components: the host compiles them once and keeps them.
[profile.release]
opt-level = "s"
lto = true
codegen-units = 1
strip = "debuginfo"

# Its own workspace, even when created inside another one.
[workspace]
"#
    )
}

fn write_file(path: &Path, contents: &str) -> Result<(), String> {
    if let Some(folder) = path.parent() {
        std::fs::create_dir_all(folder)
            .map_err(|error| format!("cannot create {}: {error}", folder.display()))?;
    }
    std::fs::write(path, contents)
        .map_err(|error| format!("cannot write {}: {error}", path.display()))
}
