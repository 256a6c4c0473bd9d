//! What this process may do with BPF: its effective capabilities.
//!
//! Checked before anything is loaded, so that `--steering auto` can fall
//! back with one precise warning instead of a chain of EPERMs, and
//! `--steering ebpf` can fail with the same message.

use std::fmt;

/// Capability numbers from `linux/capability.h`.
const CAP_NET_ADMIN: u32 = 12;
const CAP_SYS_ADMIN: u32 = 21;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

/// The capabilities eBPF steering needs, with their names.
const NEEDED: [(u32, &str); 3] = [
    (CAP_BPF, "CAP_BPF"),
    (CAP_NET_ADMIN, "CAP_NET_ADMIN"),
    (CAP_PERFMON, "CAP_PERFMON"),
];

/// Capabilities eBPF steering needs but this process lacks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Missing(pub Vec<&'static str>);

impl fmt::Display for Missing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "eBPF steering needs root or the capabilities CAP_BPF, CAP_NET_ADMIN and CAP_PERFMON; this process lacks {}",
            self.0.join(", ")
        )
    }
}

/// The effective capability set of this process (`CapEff` in
/// `/proc/self/status`), or `None` when it cannot be read.
fn effective() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find_map(|l| l.strip_prefix("CapEff:"))?;
    u64::from_str_radix(line.trim(), 16).ok()
}

/// Which of the needed capabilities are missing from the effective set
/// `caps` (CAP_SYS_ADMIN alone also suffices, as on kernels before 5.8).
pub fn missing_from(caps: u64) -> Option<Missing> {
    let has = |cap: u32| caps & (1u64 << cap) != 0;
    if has(CAP_SYS_ADMIN) && has(CAP_NET_ADMIN) {
        return None;
    }
    let missing: Vec<_> = NEEDED
        .iter()
        .filter(|(cap, _)| !has(*cap))
        .map(|(_, name)| *name)
        .collect();
    if missing.is_empty() {
        None
    } else {
        Some(Missing(missing))
    }
}

/// What this process lacks for eBPF steering, if anything.
pub fn check() -> Option<Missing> {
    // Unreadable status: let the loader find out and report the real error.
    missing_from(effective()?)
}

/// Whether this process may mount bpffs (CAP_SYS_ADMIN).
pub fn can_mount() -> bool {
    effective().is_some_and(|caps| caps & (1u64 << CAP_SYS_ADMIN) != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_and_the_three_caps_suffice() {
        assert_eq!(missing_from(u64::MAX), None);
        let three = (1 << CAP_BPF) | (1 << CAP_NET_ADMIN) | (1 << CAP_PERFMON);
        assert_eq!(missing_from(three), None);
    }

    #[test]
    fn names_what_is_missing() {
        let m = missing_from(1 << CAP_BPF).expect("missing");
        assert_eq!(m.0, vec!["CAP_NET_ADMIN", "CAP_PERFMON"]);
        let text = missing_from(0).expect("missing").to_string();
        assert!(
            text.contains("root") && text.contains("CAP_BPF, CAP_NET_ADMIN, CAP_PERFMON"),
            "{text}"
        );
    }
}
