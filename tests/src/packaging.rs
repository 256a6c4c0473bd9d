//! The systemd unit in `packaging/` passes `systemd-analyze verify`.

use std::{path::Path, process::Command};

/// The template unit, instantiated, verifies cleanly. `ExecStart` points at
/// `/usr/local/bin/swarm-sticky`, which a test machine does not have, so the
/// copy under test points at the binary just built; everything else is
/// verified as shipped.
#[test]
fn systemd_unit_verifies() {
    assert!(
        Command::new("systemd-analyze").arg("--version").output().is_ok(),
        "systemd-analyze is not installed: install Debian's systemd (`cargo xtask test` does as root)"
    );
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace");
    let unit = std::fs::read_to_string(root.join("packaging/swarm-sticky@.service")).expect("read the unit");
    let bin = crate::harness::binary();
    let unit = unit.replace("/usr/local/bin/swarm-sticky", &bin.display().to_string());
    let dir = tempfile::tempdir().expect("tempdir");
    let template = dir.path().join("swarm-sticky@.service");
    std::fs::write(&template, unit).expect("write the unit");
    let instance = dir.path().join("swarm-sticky@main.service");
    std::os::unix::fs::symlink(&template, &instance).expect("instance link");
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&instance)
        .output()
        .expect("run systemd-analyze");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.trim().is_empty(),
        "systemd-analyze verify: {stderr}"
    );
}
