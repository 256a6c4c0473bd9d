//! `cargo xtask install`: the binary, the systemd unit and a commented
//! default configuration, under `--root` (default `/`). Existing
//! configuration files are left as they are.

use std::path::{Path, PathBuf};

use anyhow::Context as _;

use crate::{cmd, setup};

fn copy(from: &Path, to: &Path, mode: u32, overwrite: bool) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    if to.exists() && !overwrite {
        println!("  kept     {}", to.display());
        return Ok(());
    }
    if let Some(dir) = to.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    }
    // Write next to the target and rename: a running binary is replaced,
    // not overwritten in place.
    let tmp = to.with_extension("new");
    std::fs::copy(from, &tmp).with_context(|| format!("copy {} to {}", from.display(), tmp.display()))?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode))?;
    std::fs::rename(&tmp, to).with_context(|| format!("install {}", to.display()))?;
    println!("  installed {}", to.display());
    Ok(())
}

/// Builds the release binary and installs everything under `root`.
///
/// # Errors
/// When the build or a copy fails.
pub fn run(root: &Path) -> anyhow::Result<()> {
    let tools = setup::run()?;
    let bin = crate::tasks::release_binary(&tools)?;
    let src = cmd::root();
    let at = |p: &str| -> PathBuf { root.join(p.trim_start_matches('/')) };
    println!("installing under {}", root.display());
    copy(&bin, &at("/usr/local/bin/swarm-sticky"), 0o755, true)?;
    copy(
        &src.join("packaging/swarm-sticky@.service"),
        &at("/etc/systemd/system/swarm-sticky@.service"),
        0o644,
        true,
    )?;
    copy(
        &src.join("packaging/swarm-sticky.env"),
        &at("/etc/swarm-sticky/swarm-sticky.env"),
        0o644,
        false,
    )?;
    copy(
        &src.join("docs/config.example.toml"),
        &at("/etc/swarm-sticky/config.toml"),
        0o644,
        false,
    )?;
    copy(
        &src.join("docs/deploy.md"),
        &at("/usr/local/share/doc/swarm-sticky/deploy.md"),
        0o644,
        true,
    )?;
    if root == Path::new("/") && Path::new("/run/systemd/system").is_dir() {
        cmd::run(std::process::Command::new("systemctl").arg("daemon-reload"))?;
    }
    println!("next: edit /etc/swarm-sticky/config.toml, then `systemctl enable --now swarm-sticky@main`");
    Ok(())
}
