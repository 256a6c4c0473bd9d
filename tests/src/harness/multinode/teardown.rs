//! What is left after the daemons are gone, removed exactly: the shims of
//! a killed node (they survive dockerd and containerd, and keep its
//! containers running), any process still in the cluster's cgroups, the
//! mounts under the scratch directory (dockerd's own bind mount of its
//! data root and the namespace files stay behind after a SIGKILL), and
//! the cgroup directories.

use std::{path::Path, process::Command, time::Duration};

use super::node::{alive, signal};

/// SIGKILLs every `containerd-shim` whose `-address` (its containerd's
/// socket) lies under `dir`: only this cluster's.
pub(super) fn kill_shims(dir: &Path) {
    let prefix = format!("{}/", dir.display());
    let Ok(procs) = std::fs::read_dir("/proc") else { return };
    for p in procs.flatten() {
        let Some(pid) = p.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(raw) = std::fs::read(p.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<&[u8]> = raw.split(|b| *b == 0).collect();
        let is_shim = args
            .first()
            .is_some_and(|a| String::from_utf8_lossy(a).contains("containerd-shim"));
        let ours = args
            .windows(2)
            .any(|w| w[0] == b"-address" && w[1].starts_with(prefix.as_bytes()));
        if is_shim && ours {
            signal(pid, "-KILL");
        }
    }
}

/// The cgroup directories named `name` under every v1 controller (or the
/// v2 root).
fn cgroup_dirs(name: &str) -> Vec<std::path::PathBuf> {
    let root = Path::new("/sys/fs/cgroup");
    let mut dirs = Vec::new();
    if root.join(name).is_dir() {
        dirs.push(root.join(name));
    }
    if let Ok(ctrls) = std::fs::read_dir(root) {
        dirs.extend(ctrls.flatten().map(|c| c.path().join(name)).filter(|p| p.is_dir()));
    }
    dirs
}

/// Every pid in `dir` and the cgroups below it.
fn pids_below(dir: &Path, out: &mut Vec<u32>) {
    if let Ok(text) = std::fs::read_to_string(dir.join("cgroup.procs")) {
        out.extend(text.lines().filter_map(|l| l.trim().parse::<u32>().ok()));
    }
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                pids_below(&e.path(), out);
            }
        }
    }
}

/// SIGKILLs what still runs in the cgroups `names` (the containers of a
/// killed node, once its shims are gone), waits (bounded) for it to go,
/// then removes the cgroup directories, deepest first.
pub(super) fn clear_cgroups(names: &[String]) {
    let dirs: Vec<_> = names.iter().flat_map(|n| cgroup_dirs(n)).collect();
    let mut pids = Vec::new();
    for d in &dirs {
        pids_below(d, &mut pids);
    }
    pids.sort_unstable();
    pids.dedup();
    for pid in &pids {
        signal(*pid, "-KILL");
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while pids.iter().any(|p| alive(*p)) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    for d in &dirs {
        let _ = Command::new("find")
            .arg(d)
            .args(["-depth", "-type", "d", "-exec", "rmdir", "{}", "+"])
            .output();
    }
}

/// Unmounts everything under `dir`, deepest first (lazily when busy).
pub(super) fn unmount_below(dir: &Path) {
    let prefix = format!("{}/", dir.display());
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut mounts: Vec<&str> = info
        .lines()
        .filter_map(|l| l.split_whitespace().nth(4))
        .filter(|m| m.starts_with(&prefix))
        .collect();
    mounts.sort_unstable_by(|a, b| b.cmp(a));
    mounts.dedup();
    for m in mounts {
        let ok = Command::new("umount").arg(m).output().is_ok_and(|o| o.status.success());
        if !ok {
            let _ = Command::new("umount").args(["-l", m]).output();
        }
    }
}
