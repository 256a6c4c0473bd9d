//! Builds the eBPF object (`proxy-ebpf`) and embeds it in swarm-sticky.
//!
//! The object is compiled by aya-build with the nightly toolchain and
//! `bpf-linker`. A machine without that toolchain can still `cargo check`,
//! `cargo build` and `cargo test` the user-space crates: this script then
//! writes an empty object, sets `cfg(ebpf_stub)` and says what is skipped.
//! The binary built that way runs with SO_REUSEPORT steering only.
//! `cargo xtask setup` installs everything the real build needs.

use std::{env, path::PathBuf, process::Command};

use anyhow::{Context as _, anyhow};

/// Set to 1 to build without the eBPF object even when the toolchain is there.
const SKIP_ENV: &str = "SWARM_STICKY_SKIP_EBPF";

fn main() -> anyhow::Result<()> {
    println!("cargo::rustc-check-cfg=cfg(ebpf_stub)");
    println!("cargo:rerun-if-env-changed={SKIP_ENV}");
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").context("OUT_DIR not set")?);
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").context("CARGO_MANIFEST_DIR not set")?);
    let workspace = manifest_dir.parent().context("proxy-user sits inside the workspace")?;

    // `cargo xtask setup` installs bpf-linker under target/tools; find it
    // there too, so that a plain `cargo build` after setup builds the object.
    let tools = workspace.join("target/tools/bpf-linker/bin");
    // Rebuild once `cargo xtask setup` installs (or replaces) the linker; a
    // missing file keeps this script rerunning, which is cheap in stub mode.
    println!("cargo:rerun-if-changed={}", tools.join("bpf-linker").display());
    let path = env::var_os("PATH").unwrap_or_default();
    let mut dirs: Vec<PathBuf> = env::split_paths(&path).collect();
    if tools.is_dir() && !dirs.contains(&tools) {
        dirs.insert(0, tools);
        let joined = env::join_paths(dirs).context("join PATH")?;
        // SAFETY: build scripts are single-threaded; nothing else reads the
        // environment concurrently.
        #[expect(unsafe_code, reason = "set_var is unsafe in edition 2024")]
        unsafe {
            env::set_var("PATH", joined);
        }
    }

    if let Some(missing) = missing_toolchain() {
        println!(
            "cargo:warning=eBPF object not built: {missing}; this build steers with SO_REUSEPORT only (run `cargo xtask setup`)"
        );
        return stub(&out_dir);
    }

    let metadata = cargo_metadata::MetadataCommand::new()
        .no_deps()
        .exec()
        .context("cargo metadata")?;
    let ebpf = metadata
        .packages
        .iter()
        .find(|p| p.name.as_str() == "proxy-ebpf")
        .ok_or_else(|| anyhow!("proxy-ebpf package not found"))?;
    let root_dir = ebpf
        .manifest_path
        .parent()
        .context("proxy-ebpf manifest has a parent")?;
    aya_build::build_ebpf(
        [aya_build::Package {
            name: ebpf.name.as_str(),
            root_dir: root_dir.as_str(),
            ..Default::default()
        }],
        aya_build::Toolchain::default(),
    )
    .context("build the eBPF object (proxy-ebpf)")
}

/// What keeps the eBPF object from being built here, if anything.
fn missing_toolchain() -> Option<String> {
    if env::var_os(SKIP_ENV).is_some_and(|v| v == "1") {
        return Some(format!("{SKIP_ENV}=1"));
    }
    if which_on_path("bpf-linker").is_none() {
        return Some("bpf-linker not found".into());
    }
    let sysroot = Command::new("rustup")
        .args(["run", "nightly", "rustc", "--print", "sysroot"])
        .output();
    match sysroot {
        Ok(out) if out.status.success() => {
            let root = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
            if !root.join("lib/rustlib/src/rust/library/core").is_dir() {
                return Some("rust-src is not installed for the nightly toolchain".into());
            }
            None
        }
        _ => Some("no nightly toolchain".into()),
    }
}

fn which_on_path(name: &str) -> Option<PathBuf> {
    let path = env::var_os("PATH")?;
    env::split_paths(&path).map(|d| d.join(name)).find(|p| p.is_file())
}

fn stub(out_dir: &std::path::Path) -> anyhow::Result<()> {
    println!("cargo:rustc-cfg=ebpf_stub");
    std::fs::write(out_dir.join("proxy"), []).context("write the empty eBPF object")
}
