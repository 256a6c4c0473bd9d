//! `build`, `run`, `test` and `lint`.

use std::{path::PathBuf, process::Command};

use anyhow::{Context as _, bail};

use crate::{cmd, packages, setup};

/// Debian packages whose commands the privileged and swarm tests use.
const TEST_PACKAGES: [packages::Need; 13] = [
    ("ip", "iproute2"),
    ("nsenter", "util-linux"),
    ("setpriv", "util-linux"),
    ("iptables", "iptables"),
    ("curl", "curl"),
    ("dockerd", "docker.io"),
    // The dashboard test drives a real headless browser.
    ("chromium", "chromium"),
    // The packaging test verifies the systemd unit.
    ("systemd-analyze", "systemd"),
    // The static test binary links aws-lc (rustls), C code built for musl.
    ("musl-gcc", "musl-tools"),
    // The HTTPS tests: a real TLS client and the TLS scanner.
    ("openssl", "openssl"),
    ("testssl", "testssl.sh"),
    // The ACME tests: Let's Encrypt's test CA and its DNS/challenge server.
    ("pebble", "pebble"),
    ("pebble-challtestsrv", "pebble"),
];

/// Target of the static binary in the swarm tests' `FROM scratch` image.
const STATIC_TARGET: &str = "x86_64-unknown-linux-musl";

/// `cargo` with the tools on PATH.
fn cargo_with(tools: &setup::Tools) -> Command {
    let mut c = cmd::cargo();
    c.env("PATH", setup::path_with(tools));
    c
}

/// `cargo xtask build`: the whole workspace in release mode.
pub fn build() -> anyhow::Result<()> {
    let tools = setup::run()?;
    cmd::run(cargo_with(&tools).args(["build", "--release", "--workspace", "--exclude", "proxy-ebpf"]))
}

/// Builds the release `swarm-sticky` and returns its path.
pub fn release_binary(tools: &setup::Tools) -> anyhow::Result<PathBuf> {
    cmd::run(cargo_with(tools).args(["build", "--release", "-p", "proxy-user", "--bin", "swarm-sticky"]))?;
    Ok(cmd::root().join("target/release/swarm-sticky"))
}

/// `cargo xtask image`: swarm-sticky's container image from the release
/// binary, built on the local engine by the binary itself (`swarm-sticky
/// image`, the same way it builds its anchor image: no registry, no
/// Dockerfile to keep in step).
pub fn image(tags: &[String]) -> anyhow::Result<()> {
    let tools = setup::run()?;
    let bin = release_binary(&tools)?;
    let mut build = Command::new(&bin);
    build.arg("image");
    for t in tags {
        build.args(["--tag", t]);
    }
    cmd::run(&mut build).context("build the image (is a Docker engine running here?)")
}

/// Whether a Docker engine answers and this node is a swarm manager.
fn swarm_manager() -> bool {
    Command::new("docker")
        .args(["info", "--format", "{{.Swarm.ControlAvailable}}"])
        .output()
        .is_ok_and(|o| o.status.success() && String::from_utf8_lossy(&o.stdout).trim() == "true")
}

/// `cargo xtask run -- ARGS`: build, then run swarm-sticky, through sudo
/// when not root and sudo exists. Without arguments: Docker discovery on
/// 0.0.0.0:8080 when this node is a swarm manager, else the demo.
pub fn run(args: &[String]) -> anyhow::Result<()> {
    let tools = setup::run()?;

    let args: Vec<String> = if !args.is_empty() {
        args.to_vec()
    } else if swarm_manager() {
        println!(
            "a Docker engine answers and this node is a swarm manager: running `swarm-sticky run --docker --listen 0.0.0.0:8080`"
        );
        ["run", "--docker", "--listen", "0.0.0.0:8080"]
            .iter()
            .map(ToString::to_string)
            .collect()
    } else {
        println!("no swarm manager here: running `swarm-sticky demo` (built-in backends, balancer on 127.0.0.1:8080)");
        vec!["demo".into()]
    };
    let bin = release_binary(&tools)?;
    let mut c = if cmd::is_root() || !cmd::on_path("sudo") {
        Command::new(&bin)
    } else {
        println!("running through sudo: eBPF steering needs root or CAP_BPF+CAP_NET_ADMIN+CAP_PERFMON");
        let mut s = Command::new("sudo");
        s.arg("-E").arg(&bin);
        s
    };
    let status = c
        .args(&args)
        .status()
        .with_context(|| format!("start {}", bin.display()))?;
    if !status.success() {
        bail!("swarm-sticky exited with {status}");
    }
    Ok(())
}

/// Installs the Debian packages the privileged tests need, when root.
fn ensure_test_packages() -> anyhow::Result<()> {
    let missing = packages::install_missing(&TEST_PACKAGES)?;
    if !missing.is_empty() {
        println!(
            "missing commands for some tests (packages {}); those tests will fail with the reason",
            missing.join(" ")
        );
    }
    Ok(())
}

/// Builds the static (musl) binary the swarm tests put in their image.
/// The image only runs the whoami backend, so it is built without the
/// eBPF object.
fn static_binary(tools: &setup::Tools) -> anyhow::Result<PathBuf> {
    let installed = cmd::output(Command::new("rustup").args(["target", "list", "--installed"]))?;
    if !installed.lines().any(|l| l.trim() == STATIC_TARGET) {
        cmd::run(Command::new("rustup").args(["target", "add", STATIC_TARGET]))?;
    }
    cmd::run(
        cargo_with(tools)
            .args([
                "build",
                "-p",
                "proxy-user",
                "--bin",
                "swarm-sticky",
                "--target",
                STATIC_TARGET,
            ])
            .env("SWARM_STICKY_SKIP_EBPF", "1"),
    )?;
    Ok(cmd::root().join(format!("target/{STATIC_TARGET}/debug/swarm-sticky")))
}

/// `cargo xtask test`: every tier. Unit and unprivileged end-to-end tests
/// first, then the privileged ones (root, one fresh netns per test) one at
/// a time, because they share kernel state such as bpffs.
pub fn test(filter: Option<&str>) -> anyhow::Result<()> {
    let tools = setup::run()?;
    ensure_test_packages()?;
    cmd::run(cargo_with(&tools).args(["build", "-p", "proxy-user", "--bin", "swarm-sticky"]))?;
    let bin = cmd::root().join("target/debug/swarm-sticky");
    let mut failures = Vec::new();

    let mut unit = cargo_with(&tools);
    unit.args(["test", "--workspace", "--exclude", "proxy-ebpf", "--exclude", "xtask"])
        .env("SWARM_STICKY_BIN", &bin);
    if let Some(f) = filter {
        unit.args(["--", f]);
    }
    println!("== unit and unprivileged end-to-end tests");
    if let Err(err) = cmd::run(&mut unit) {
        failures.push(format!("{err:#}"));
    }

    println!("== privileged tests (root, a fresh network namespace each) and swarm tests (a real engine)");
    let mut privileged = cargo_with(&tools);
    privileged
        .args(["test", "-p", "tests", "--", "--ignored", "--test-threads=1"])
        .env("SWARM_STICKY_BIN", &bin)
        .env("RUST_BACKTRACE", "1");
    // Started here, stopped when this function returns (drop).
    let mut _engine = None;
    if cmd::is_root() {
        privileged.env("SWARM_STICKY_STATIC_BIN", static_binary(&tools)?);
        match crate::docker::ensure() {
            Ok(started) => _engine = started,
            Err(err) => println!("{err:#}; the swarm tests will fail and say so"),
        }
    } else {
        println!("not root: the privileged and swarm tests will fail and say so");
    }
    if let Some(f) = filter {
        privileged.arg(f);
    }
    if let Err(err) = cmd::run(&mut privileged) {
        failures.push(format!("{err:#}"));
    }
    if !failures.is_empty() {
        bail!("test failures:\n{}", failures.join("\n"));
    }
    println!("all test tiers passed");
    Ok(())
}

/// `cargo xtask lint`: rustfmt, then clippy on the host crates and on the
/// eBPF crate separately (features would otherwise unify across them).
pub fn lint() -> anyhow::Result<()> {
    let tools = setup::run()?;
    let mut fmt = Command::new("rustup");
    fmt.args(["run", "nightly", "cargo", "fmt", "--all", "--", "--check"])
        .current_dir(cmd::root())
        .env_remove("CARGO");
    cmd::run(&mut fmt).context("formatting differs: run `cargo +nightly fmt --all`")?;
    cmd::run(cargo_with(&tools).args([
        "clippy",
        "--workspace",
        "--exclude",
        "proxy-ebpf",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    let mut ebpf = Command::new("rustup");
    ebpf.args([
        "run",
        "nightly",
        "cargo",
        "clippy",
        "-p",
        "proxy-ebpf",
        "--target",
        "bpfel-unknown-none",
        "-Z",
        "build-std=core",
        "--release",
        "--",
        "-D",
        "warnings",
    ])
    .current_dir(cmd::root())
    .env("PATH", setup::path_with(&tools))
    .env_remove("CARGO")
    .env_remove("RUSTUP_TOOLCHAIN");
    cmd::run(&mut ebpf)
}
