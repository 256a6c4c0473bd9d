//! Debian packages whose commands xtask runs (tests, benchmarks): which
//! are missing, and installing them with apt-get when xtask runs as root.
//! Not root, or not Debian: the caller decides whether a missing command
//! is fatal.

use std::process::Command;

use anyhow::bail;

use crate::cmd;

/// A command and the Debian package that provides it.
pub type Need = (&'static str, &'static str);

/// The packages of the commands in `needs` that are not on PATH, each once.
fn missing(needs: &[Need]) -> Vec<&'static str> {
    let mut missing: Vec<&str> = needs
        .iter()
        .filter(|(c, _)| !cmd::on_path(c))
        .map(|(_, p)| *p)
        .collect();
    missing.sort_unstable();
    missing.dedup();
    missing
}

/// Installs the packages of the commands in `needs` that are missing, when
/// root with apt-get; returns the packages still missing.
///
/// # Errors
/// When apt-get fails.
pub fn install_missing(needs: &[Need]) -> anyhow::Result<Vec<&'static str>> {
    let packages = missing(needs);
    if packages.is_empty() || !cmd::is_root() || !cmd::on_path("apt-get") {
        return Ok(packages);
    }
    println!("installing {}", packages.join(" "));
    cmd::run(Command::new("apt-get").args(["update", "-q"]))?;
    cmd::run(
        Command::new("apt-get")
            .args(["install", "-y", "-q", "--no-install-recommends"])
            .args(&packages)
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )?;
    Ok(missing(needs))
}

/// Like [`install_missing`], but a command still missing afterwards is an
/// error that says what to install.
///
/// # Errors
/// When apt-get fails or a command is still missing.
pub fn require(needs: &[Need]) -> anyhow::Result<()> {
    let packages = install_missing(needs)?;
    if !packages.is_empty() {
        bail!(
            "missing commands; install them (Debian: apt-get install {})",
            packages.join(" ")
        );
    }
    Ok(())
}
