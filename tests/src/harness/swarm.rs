//! A real Docker engine in swarm mode for the swarm test tier.
//!
//! `cargo xtask test` makes sure an engine answers (starting Debian's
//! `dockerd` when none runs, and stopping it afterwards) and builds the
//! static test binary. This module initialises the swarm, fences the host
//! namespace, builds the `FROM scratch` whoami image without any registry,
//! and creates networks and services that are removed on drop.
//!
//! The fence: an `unreachable` route in the host namespace for the subnet
//! of every overlay network a test creates. A host-namespace connection to
//! an overlay address would leave the machine; with the route it fails at
//! once instead. Tests reach tasks only from inside the overlay's
//! namespace. The routes are exactly the networks' subnets, never a whole
//! private range: this machine's own resolver may sit in one (a swarm made
//! here uses the pool 10.201.0.0/16 to keep clear of it).

use std::{
    path::PathBuf,
    process::Command,
    sync::OnceLock,
    time::{Duration, Instant},
};

/// The test image.
pub const IMAGE: &str = "swarm-sticky-test:local";
/// The test image with a HEALTHCHECK.
pub const HEALTH_IMAGE: &str = "swarm-sticky-test-health:local";

/// Runs the docker CLI and returns stdout; panics with stderr on failure.
pub fn docker(args: &[&str]) -> String {
    let out = Command::new("docker")
        .args(args)
        .output()
        .expect("run the docker CLI (package docker.io)");
    assert!(
        out.status.success(),
        "docker {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Panics unless root and a Docker engine answers, with the reason.
pub fn require_engine() {
    super::require_root();
    let ok = Command::new("docker")
        .args(["version", "--format", "{{.Server.APIVersion}}"])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "this test needs a Docker engine on /var/run/docker.sock; `cargo xtask test` starts dockerd (package docker.io)"
    );
}

/// The address pool of a swarm this harness initialises.
const ADDR_POOL: &str = "10.201.0.0/16";

/// Initialises a single-node swarm unless this node is in one; returns the
/// engine's socket address for discovery.
pub fn ensure_swarm() -> &'static str {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        require_engine();
        if docker(&["info", "--format", "{{.Swarm.LocalNodeState}}"]) != "active" {
            docker(&[
                "swarm",
                "init",
                "--advertise-addr",
                "127.0.0.1",
                "--default-addr-pool",
                ADDR_POOL,
            ]);
        }
    });
    "unix:///var/run/docker.sock"
}

fn ip_route(args: &[&str]) {
    let out = Command::new("ip").arg("route").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip route {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The static binary for the image: `SWARM_STICKY_STATIC_BIN` (set by
/// `cargo xtask test`).
fn static_binary() -> PathBuf {
    let bin = std::env::var_os("SWARM_STICKY_STATIC_BIN")
        .map(PathBuf::from)
        .expect("SWARM_STICKY_STATIC_BIN is not set: run the swarm tests with `cargo xtask test` (it builds the static test binary)");
    assert!(bin.is_file(), "no static binary at {}", bin.display());
    bin
}

/// `docker build -t tag` of a context holding `dockerfile` (and the static
/// binary when `with_binary`), without BuildKit (no buildx here).
fn build_image(tag: &str, dockerfile: &str, with_binary: bool) {
    let ctx = std::env::temp_dir().join(format!("ss-image-{}-{}", std::process::id(), tag.replace(':', "-")));
    std::fs::create_dir_all(&ctx).expect("image context");
    if with_binary {
        std::fs::copy(static_binary(), ctx.join("swarm-sticky")).expect("copy the static binary");
    }
    std::fs::write(ctx.join("Dockerfile"), dockerfile).expect("Dockerfile");
    let out = Command::new("docker")
        .args(["build", "-q", "-t", tag])
        .arg(&ctx)
        .env("DOCKER_BUILDKIT", "0")
        .output()
        .expect("docker build");
    assert!(
        out.status.success(),
        "docker build {tag}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_dir_all(&ctx);
}

/// Builds the `FROM scratch` whoami test image once per test run.
pub fn test_image() -> &'static str {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        build_image(
            IMAGE,
            "FROM scratch\nCOPY swarm-sticky /swarm-sticky\nEXPOSE 8000\n\
             ENTRYPOINT [\"/swarm-sticky\", \"whoami\", \"--listen\", \"0.0.0.0:8000\"]\n",
            true,
        );
    });
    IMAGE
}

/// The test image with a Docker HEALTHCHECK: `swarm-sticky probe` of the
/// whoami's `/healthz` every second, unhealthy after one failure. Flip it
/// with [`Service::set_health`].
pub fn health_image() -> &'static str {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let base = test_image();
        build_image(
            HEALTH_IMAGE,
            &format!(
                "FROM {base}\nHEALTHCHECK --interval=1s --timeout=2s --retries=1 \
                 CMD [\"/swarm-sticky\", \"probe\", \"http://127.0.0.1:8000/healthz\"]\n"
            ),
            false,
        );
    });
    HEALTH_IMAGE
}

/// An overlay network, fenced off in the host namespace; removed (with
/// its fence) on drop, after its services.
pub struct Network {
    /// Its name.
    pub name: String,
    /// Its ID.
    pub id: String,
    /// Its subnet, e.g. `10.201.1.0/24`.
    pub subnet: String,
}

impl Network {
    /// Creates an attachable overlay network with a unique name.
    pub fn new(tag: &str) -> Self {
        let name = format!("ss-{tag}-{}", std::process::id());
        let id = docker(&["network", "create", "-d", "overlay", "--attachable", &name]);
        let subnet = docker(&[
            "network",
            "inspect",
            "-f",
            "{{range .IPAM.Config}}{{.Subnet}}{{end}}",
            &id,
        ]);
        assert!(subnet.contains('/'), "network {name} has no IPv4 subnet: {subnet:?}");
        ip_route(&["replace", "unreachable", &subnet]);
        Self { name, id, subnet }
    }

    /// The network's load-balancer namespace on this node, once it exists.
    pub fn lb_netns(&self, timeout: Duration) -> PathBuf {
        let path = PathBuf::from(format!("/var/run/docker/netns/lb_{}", &self.id[..9]));
        let deadline = Instant::now() + timeout;
        while !path.exists() {
            assert!(
                Instant::now() < deadline,
                "{} did not appear within {timeout:?}",
                path.display()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        path
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        let _ = Command::new("docker").args(["network", "rm", &self.name]).output();
        let _ = Command::new("ip")
            .args(["route", "del", "unreachable", &self.subnet])
            .output();
    }
}

/// A swarm service, removed on drop.
pub struct Service {
    /// Its name.
    pub name: String,
}

/// The arguments of `docker service create` for a test service `name` of
/// `image`, with `args` before the image: detached, `--init` (the whoami
/// is PID 1 otherwise and ignores SIGTERM) and `--no-resolve-image` (no
/// registry: the engine has the image already).
pub fn service_create_args<'a>(name: &'a str, args: &[&'a str], image: &'a str) -> Vec<&'a str> {
    let mut all = vec![
        "service",
        "create",
        "--detach",
        "--quiet",
        "--no-resolve-image",
        "--init",
        "--name",
        name,
    ];
    all.extend_from_slice(args);
    all.push(image);
    all
}

impl Service {
    /// `docker service create --detach` with `args` before the image.
    pub fn create(tag: &str, args: &[&str]) -> Self {
        Self::create_from(tag, args, test_image())
    }

    /// [`Service::create`] of another `image`.
    pub fn create_from(tag: &str, args: &[&str], image: &str) -> Self {
        let name = format!("ss-{tag}-{}", std::process::id());
        docker(&service_create_args(&name, args, image));
        Self { name }
    }

    /// Container hostnames of the running tasks on this node.
    pub fn hostnames(&self) -> Vec<String> {
        let mut names: Vec<String> = self.containers().into_iter().map(|(_, h)| h).collect();
        names.sort();
        names
    }

    /// `(container ID, hostname)` of the running tasks on this node.
    pub fn containers(&self) -> Vec<(String, String)> {
        let ids = docker(&[
            "ps",
            "-q",
            "--filter",
            &format!("label=com.docker.swarm.service.name={}", self.name),
        ]);
        ids.lines()
            .filter(|l| !l.is_empty())
            .map(|id| (id.to_string(), docker(&["inspect", "-f", "{{.Config.Hostname}}", id])))
            .collect()
    }

    /// Flips the whoami health switch of `container` (a [`health_image`]
    /// task) from inside it: its HEALTHCHECK fails from then on, or passes
    /// again.
    pub fn set_health(container: &str, healthy: bool) {
        let path = if healthy { "recover" } else { "fail" };
        docker(&[
            "exec",
            container,
            "/swarm-sticky",
            "probe",
            &format!("http://127.0.0.1:8000/healthz/{path}"),
        ]);
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = Command::new("docker").args(["service", "rm", &self.name]).output();
        // Wait (bounded) for its containers to go, so the network can be removed.
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            let out = Command::new("docker")
                .args([
                    "ps",
                    "-aq",
                    "--filter",
                    &format!("label=com.docker.swarm.service.name={}", self.name),
                ])
                .output();
            if out.is_ok_and(|o| o.stdout.trim_ascii().is_empty()) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}
