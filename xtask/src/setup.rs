//! `cargo xtask setup`: make the eBPF build possible on a fresh machine.
//!
//! 1. the nightly toolchain with `rust-src` (for `-Z build-std=core`);
//! 2. `bpf-linker`, built against the nightly's *own* libLLVM: a plain
//!    `cargo install bpf-linker` picks the system's llvm-config (Debian
//!    12: LLVM 14) and fails to link. The nightly ships its LLVM as
//!    `lib/libLLVM.so.<ver>-rust-<ver>-nightly`; a prefix directory with a
//!    `libLLVM.so` symlink to it is all bpf-linker's build needs.
//!
//! Everything lands in `target/tools/`; a stamp records which nightly the
//! linker was built for, so that a nightly update rebuilds it.

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use anyhow::{Context as _, bail};
use indicatif::{ProgressBar, ProgressStyle};

use crate::cmd;

/// bpf-linker release known to work with aya 0.14 and LLVM 22.
const BPF_LINKER_VERSION: &str = "0.13.0";

/// What setup found or installed.
pub struct Tools {
    /// Directory with `bpf-linker`, to put on PATH.
    pub bin_dir: PathBuf,
}

/// A spinner for a step that takes a while.
fn spinner(msg: &str) -> ProgressBar {
    let pb = ProgressBar::new_spinner();
    pb.set_style(
        ProgressStyle::with_template("{spinner} {msg} [{elapsed}]")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    pb.set_message(msg.to_string());
    pb.enable_steady_tick(Duration::from_millis(120));
    pb
}

/// Runs a long step under a spinner; its output goes to a log file that is
/// shown when the step fails.
fn long_step(msg: &str, log: &Path, cmd: &mut Command) -> anyhow::Result<()> {
    let pb = spinner(msg);
    let file = std::fs::File::create(log).with_context(|| format!("create {}", log.display()))?;
    let status = cmd
        .stdout(file.try_clone().context("log file")?)
        .stderr(file)
        .status()
        .with_context(|| format!("start {cmd:?}"))?;
    pb.finish_and_clear();
    if !status.success() {
        let tail = std::fs::read_to_string(log).unwrap_or_default();
        let tail: Vec<&str> = tail.lines().rev().take(30).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        bail!(
            "{msg} failed ({status}); last lines of {}:\n{}",
            log.display(),
            tail.join("\n")
        );
    }
    println!("✓ {msg}");
    Ok(())
}

fn rustup() -> Command {
    let mut c = Command::new("rustup");
    // Never let a toolchain install replace the shared rustup binary.
    c.env("RUSTUP_AUTO_INSTALL", "0");
    c
}

/// The nightly's sysroot, installing the toolchain when it is missing.
fn nightly_sysroot(tools: &Path) -> anyhow::Result<PathBuf> {
    let probe = rustup()
        .args(["run", "nightly", "rustc", "--print", "sysroot"])
        .output();
    if !matches!(&probe, Ok(o) if o.status.success()) {
        long_step(
            "install the nightly toolchain",
            &tools.join("nightly-install.log"),
            rustup().args([
                "toolchain",
                "install",
                "nightly",
                "--profile",
                "minimal",
                "--component",
                "rust-src",
                "--no-self-update",
            ]),
        )?;
    }
    let out = cmd::output(rustup().args(["run", "nightly", "rustc", "--print", "sysroot"]))?;
    Ok(PathBuf::from(out.trim()))
}

fn ensure_rust_src(sysroot: &Path, tools: &Path) -> anyhow::Result<()> {
    if sysroot.join("lib/rustlib/src/rust/library/core").is_dir() {
        println!("✓ rust-src (nightly) present");
        return Ok(());
    }
    long_step(
        "add rust-src to the nightly toolchain",
        &tools.join("rust-src.log"),
        rustup().args(["component", "add", "rust-src", "--toolchain", "nightly"]),
    )
}

/// The nightly's libLLVM file name and LLVM major version.
fn nightly_llvm(sysroot: &Path) -> anyhow::Result<(PathBuf, u32)> {
    let lib = sysroot.join("lib");
    let so = std::fs::read_dir(&lib)
        .with_context(|| format!("list {}", lib.display()))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("libLLVM.so."))
        })
        .with_context(|| format!("no libLLVM.so.* in {} (is the nightly complete?)", lib.display()))?;
    let vv = cmd::output(rustup().args(["run", "nightly", "rustc", "-vV"]))?;
    let major = vv
        .lines()
        .find_map(|l| l.strip_prefix("LLVM version: "))
        .and_then(|v| v.split('.').next())
        .and_then(|m| m.trim().parse().ok())
        .context("rustc -vV shows no LLVM version")?;
    Ok((so, major))
}

fn ensure_bpf_linker(sysroot: &Path, tools: &Path) -> anyhow::Result<PathBuf> {
    let root = tools.join("bpf-linker");
    let bin = root.join("bin");
    let stamp = root.join("built-for");
    let nightly = cmd::output(rustup().args(["run", "nightly", "rustc", "--version"]))?;
    let works = Command::new(bin.join("bpf-linker"))
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if works && std::fs::read_to_string(&stamp).is_ok_and(|s| s == nightly) {
        println!("✓ bpf-linker present ({})", bin.display());
        return Ok(bin);
    }
    let (so, major) = nightly_llvm(sysroot)?;
    let prefix = tools.join("llvm");
    let prefix_lib = prefix.join("lib");
    std::fs::create_dir_all(&prefix_lib).with_context(|| format!("create {}", prefix_lib.display()))?;
    let name = so.file_name().context("libLLVM file name")?;
    for link in [prefix_lib.join("libLLVM.so"), prefix_lib.join(name)] {
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&so, &link).with_context(|| format!("symlink {}", link.display()))?;
    }
    let mut install = cmd::cargo();
    install
        .args([
            "install",
            "bpf-linker",
            "--locked",
            "--force",
            "--version",
            BPF_LINKER_VERSION,
            "--no-default-features",
        ])
        .args(["--features", &format!("llvm-{major}")])
        .arg("--root")
        .arg(&root)
        .env("LLVM_PREFIX", &prefix);
    long_step(
        &format!("build bpf-linker {BPF_LINKER_VERSION} against the nightly's LLVM {major} (about a minute)"),
        &tools.join("bpf-linker-build.log"),
        &mut install,
    )?;
    std::fs::write(&stamp, nightly).context("write the bpf-linker stamp")?;
    Ok(bin)
}

/// Installs what is missing; prints one line per part.
///
/// # Errors
/// When a part cannot be installed; the message shows the failing step's log.
pub fn run() -> anyhow::Result<Tools> {
    let tools = cmd::tools_dir();
    std::fs::create_dir_all(&tools).with_context(|| format!("create {}", tools.display()))?;
    if !cmd::on_path("rustup") {
        bail!("rustup is not on PATH: the eBPF build needs a nightly toolchain managed by rustup");
    }
    let sysroot = nightly_sysroot(&tools)?;
    ensure_rust_src(&sysroot, &tools)?;
    let bin_dir = ensure_bpf_linker(&sysroot, &tools)?;
    Ok(Tools { bin_dir })
}

/// `PATH` with the tools in front.
pub fn path_with(tools: &Tools) -> std::ffi::OsString {
    let mut dirs = vec![tools.bin_dir.clone()];
    if let Some(p) = std::env::var_os("PATH") {
        dirs.extend(std::env::split_paths(&p));
    }
    std::env::join_paths(dirs).unwrap_or_default()
}
