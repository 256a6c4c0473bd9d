//! This process as other processes on the host tell it apart: its PID
//! namespace (a container has one of its own) and its pid there.
//!
//! During an upgrade two swarm-sticky processes overlap on a host. The
//! eBPF state names its owners ([`crate::dataplane::owners`]) and the admin
//! answers name the process that gave them ([`INSTANCE_HEADER`]), so that
//! each container's health check judges its own process
//! (`swarm-sticky probe --this-container`).

use std::sync::OnceLock;

/// `PROC_PID_INIT_INO`: the inode of the initial PID namespace.
const INITIAL_PID_NAMESPACE: u64 = 0xEFFF_FFFC;

/// The header that names the answering process:
/// `<PID namespace inode>/<pid>`.
pub const INSTANCE_HEADER: &str = "swarm-sticky-instance";

/// The inode of this process's PID namespace (`None` when /proc cannot
/// say).
pub fn pid_namespace() -> Option<u64> {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata("/proc/self/ns/pid").ok().map(|m| m.ino())
}

/// Whether this process runs in a PID namespace of its own (a container).
pub fn in_container() -> bool {
    pid_namespace().is_some_and(|ns| ns != INITIAL_PID_NAMESPACE)
}

/// This process, as [`INSTANCE_HEADER`] names it.
pub fn instance() -> &'static str {
    static INSTANCE: OnceLock<String> = OnceLock::new();
    INSTANCE.get_or_init(|| format!("{}/{}", pid_namespace().unwrap_or(0), std::process::id()))
}

/// The PID namespace part of an [`INSTANCE_HEADER`] value.
pub fn namespace_of(instance: &str) -> Option<u64> {
    instance.split_once('/')?.0.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The instance names this process's PID namespace and pid.
    #[test]
    fn names_this_process() {
        assert_eq!(namespace_of(instance()), Some(pid_namespace().unwrap_or(0)));
        assert!(instance().ends_with(&format!("/{}", std::process::id())));
        assert_eq!(namespace_of("12/1"), Some(12));
        assert_eq!(namespace_of("garbage"), None);
    }
}
