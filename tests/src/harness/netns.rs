//! Network namespaces made by a test, removed again on drop.
//!
//! [`TestNet`] is a server namespace (where swarm-sticky runs) and a client
//! namespace joined by a veth pair, with IPv4 and IPv6 addresses that exist
//! only inside these two namespaces. Processes enter the server namespace
//! with `nsenter --net` only, so that they share this mount namespace and
//! see the same bpffs pins (`ip netns exec` would remount /sys).

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    os::{fd::AsRawFd as _, unix::fs::MetadataExt as _},
    path::PathBuf,
    process::Command,
    sync::atomic::{AtomicU32, Ordering},
};

static NEXT: AtomicU32 = AtomicU32::new(0);

fn ip(args: &[&str]) {
    let out = Command::new("ip")
        .args(args)
        .output()
        .expect("run ip (package iproute2)");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Moves the calling thread into the namespace at `path`, for good.
pub fn enter(path: &std::path::Path) {
    let f = std::fs::File::open(path).expect("open netns");
    // SAFETY: setns on a valid namespace fd only changes this thread.
    #[expect(unsafe_code, reason = "setns has no safe wrapper in std")]
    let rc = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
}

/// One network namespace.
#[derive(Debug)]
pub struct Netns {
    /// Its name under /run/netns.
    pub name: String,
}

impl Netns {
    fn new(name: String) -> Self {
        ip(&["netns", "add", &name]);
        ip(&["-n", &name, "link", "set", "lo", "up"]);
        Self { name }
    }

    /// `/run/netns/<name>`.
    pub fn path(&self) -> PathBuf {
        PathBuf::from(format!("/run/netns/{}", self.name))
    }

    /// The namespace's inode (it names swarm-sticky's pin directory).
    pub fn inode(&self) -> u64 {
        std::fs::metadata(self.path()).expect("stat netns").ino()
    }

    /// Runs `f` on a new thread inside this namespace and returns its
    /// result (namespaces are per thread, so the caller's stays as it is).
    pub fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let path = self.path();
        std::thread::spawn(move || {
            enter(&path);
            f()
        })
        .join()
        .unwrap_or_else(|p| std::panic::resume_unwind(p))
    }

    /// Runs a command inside the namespace and returns its stdout.
    pub fn exec(&self, program: &str, args: &[&str]) -> String {
        let out = Command::new("nsenter")
            .arg(format!("--net={}", self.path().display()))
            .arg(program)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("nsenter {program}: {e}"));
        assert!(
            out.status.success(),
            "{program} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Pins a killed swarm-sticky left for this namespace.
        let pins = PathBuf::from(format!("/sys/fs/bpf/swarm-sticky/net-{}", self.inode()));
        if let Ok(entries) = std::fs::read_dir(&pins) {
            for e in entries.flatten() {
                let _ = std::fs::remove_file(e.path());
            }
        }
        let _ = std::fs::remove_dir(&pins);
        let _ = Command::new("ip").args(["netns", "del", &self.name]).status();
    }
}

/// A server and a client namespace joined by a veth pair.
#[derive(Debug)]
pub struct TestNet {
    /// Where swarm-sticky runs.
    pub server: Netns,
    /// Where the test's clients run.
    pub client: Netns,
    /// The server-side veth name (for XDP).
    pub server_if: String,
    /// The server's IPv4 address on the veth.
    pub server_v4: Ipv4Addr,
    /// The server's IPv6 address on the veth.
    pub server_v6: Ipv6Addr,
    /// The client's IPv4 address on the veth.
    pub client_v4: Ipv4Addr,
    /// The client's IPv6 address on the veth.
    pub client_v6: Ipv6Addr,
}

impl TestNet {
    /// Creates both namespaces and the link between them.
    pub fn new() -> Self {
        super::require_root();
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let tag = format!("{}-{n}", std::process::id());
        let server = Netns::new(format!("ss-srv-{tag}"));
        let client = Netns::new(format!("ss-cli-{tag}"));
        let (sif, cif) = (format!("sss{n}"), format!("ssc{n}"));
        ip(&[
            "link",
            "add",
            &sif,
            "netns",
            &server.name,
            "type",
            "veth",
            "peer",
            "name",
            &cif,
            "netns",
            &client.name,
        ]);
        // 198.18.0.0/15 is reserved for benchmarking; these addresses exist
        // only on this veth pair, inside namespaces this test made.
        let (s4, c4) = (Ipv4Addr::new(198, 18, n as u8, 1), Ipv4Addr::new(198, 18, n as u8, 2));
        let s6: Ipv6Addr = format!("fd53:7374:{n:x}::1").parse().expect("v6");
        let c6: Ipv6Addr = format!("fd53:7374:{n:x}::2").parse().expect("v6");
        for (ns, ifname, v4, v6) in [(&server, &sif, s4, s6), (&client, &cif, c4, c6)] {
            ip(&["-n", &ns.name, "addr", "add", &format!("{v4}/24"), "dev", ifname]);
            ip(&[
                "-n",
                &ns.name,
                "addr",
                "add",
                &format!("{v6}/64"),
                "dev",
                ifname,
                "nodad",
            ]);
            ip(&["-n", &ns.name, "link", "set", ifname, "up"]);
        }
        Self {
            server,
            client,
            server_if: sif,
            server_v4: s4,
            server_v6: s6,
            client_v4: c4,
            client_v6: c6,
        }
    }

    /// The server address of the given family.
    pub fn server_ip(&self, v6: bool) -> IpAddr {
        if v6 {
            IpAddr::V6(self.server_v6)
        } else {
            IpAddr::V4(self.server_v4)
        }
    }
}

impl Default for TestNet {
    fn default() -> Self {
        Self::new()
    }
}
