//! Shared test fixtures.
//!
//! * L7: whoami and special-purpose backends ([`backend`]), raw-socket
//!   peers that misbehave on purpose ([`raw`]) and a proxy on real workers
//!   with hyper clients ([`proxy`]), all in process on loopback ephemeral
//!   ports.
//! * L4: network namespaces ([`netns`]), the swarm-sticky process
//!   ([`process`]) and clients that run inside a namespace ([`client`]).
//! * Swarm: the engine, images, networks and services ([`swarm`]), and
//!   stopping and starting the daemon ([`dockerd`]); a multi-node swarm
//!   of daemons in namespaces ([`multinode`]).

#[cfg(test)]
pub mod acme;
#[cfg(test)]
pub mod backend;
#[cfg(test)]
pub mod browser;
pub mod client;
pub mod dockerd;
#[cfg(test)]
pub mod https_load;
pub mod instance;
pub mod multinode;
pub mod netns;
pub mod process;
#[cfg(test)]
pub mod proxy;
#[cfg(test)]
pub mod raw;
pub mod swarm;
#[cfg(test)]
pub mod tls;
#[cfg(test)]
pub mod tunnel;

/// Panics unless the test runs as root: a privileged test that was asked
/// for must fail with its reason, never pass silently.
pub fn require_root() {
    // SAFETY: geteuid has no preconditions and cannot fail.
    #[expect(unsafe_code, reason = "geteuid has no safe wrapper in std")]
    let euid = unsafe { libc::geteuid() };
    assert!(
        euid == 0,
        "this test needs root (network namespaces, eBPF); run it with `cargo xtask test` as root"
    );
}

/// Path of the swarm-sticky binary under test: `SWARM_STICKY_BIN` (set by
/// `cargo xtask test`), else the debug build next to this test binary.
pub fn binary() -> std::path::PathBuf {
    if let Some(p) = std::env::var_os("SWARM_STICKY_BIN") {
        return p.into();
    }
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(std::path::Path::to_path_buf)
        .unwrap_or_default();
    let bin = root.join("target/debug/swarm-sticky");
    assert!(
        bin.is_file(),
        "no swarm-sticky binary at {}: run `cargo build -p proxy-user` or `cargo xtask test`",
        bin.display()
    );
    bin
}
