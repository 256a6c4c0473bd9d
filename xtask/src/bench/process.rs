//! The processes of a benchmark and what the kernel says about them:
//! pinned starts, free loopback ports, CPU time and resident memory from
//! `/proc`, the descriptor limit, and a scratch directory for configs and
//! logs.

use std::{
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use anyhow::Context as _;

/// A child process killed on drop.
pub(super) struct Proc(pub(super) std::process::Child);

impl Proc {
    pub(super) fn id(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        // Already gone is fine: the benchmark only needs it gone.
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A directory for configs and logs, removed on drop.
pub(super) struct Scratch(PathBuf);

impl Scratch {
    /// `ss-bench-<name>-<pid>` in the temporary directory.
    pub(super) fn new(name: &str) -> anyhow::Result<Self> {
        let dir = std::env::temp_dir().join(format!("ss-bench-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
        Ok(Self(dir))
    }

    pub(super) fn path(&self) -> &Path {
        &self.0
    }

    /// A file's text, or nothing (for error messages).
    pub(super) fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.0.join(name)).unwrap_or_default()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        // Leftovers in the temporary directory are harmless.
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A loopback port free right now.
pub(super) fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Starts `program` pinned to `cpu`, stderr into `log`.
pub(super) fn spawn_on(cpu: &str, program: &Path, args: &[String], log: &Path) -> anyhow::Result<Proc> {
    let log = std::fs::File::create(log).with_context(|| format!("create {}", log.display()))?;
    let child = Command::new("taskset")
        .args(["-c", cpu])
        .arg(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .with_context(|| format!("start {}", program.display()))?;
    Ok(Proc(child))
}

/// utime + stime of a process (all its threads), in seconds.
pub(super) fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let after = stat.rsplit_once(')').context("stat format")?.1;
    let f: Vec<&str> = after.split_whitespace().collect();
    // Fields 14 and 15 of the whole line are 12 and 13 after the comm.
    let field = |i: usize| -> anyhow::Result<f64> { Ok(f.get(i).context("stat fields")?.parse::<f64>()?) };
    let ticks = field(11)? + field(12)?;
    // SAFETY: sysconf has no preconditions.
    #[expect(unsafe_code, reason = "sysconf has no safe wrapper in std")]
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Ok(ticks / hz)
}

/// Runs `f` and returns its result with the CPU seconds `pid` spent meanwhile.
pub(super) fn measured<T>(pid: u32, f: impl FnOnce() -> anyhow::Result<T>) -> anyhow::Result<(T, f64)> {
    let before = cpu_seconds(pid)?;
    let out = f()?;
    Ok((out, cpu_seconds(pid)? - before))
}

/// VmRSS of a process, in KiB.
pub(super) fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).context("VmRSS")?;
    Ok(line.split_whitespace().nth(1).context("VmRSS value")?.parse()?)
}

/// Raises this process's descriptor limit to the hard limit (children
/// inherit it).
pub(super) fn raise_nofile() {
    let mut l = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: valid pointers to an rlimit struct.
    #[expect(unsafe_code, reason = "getrlimit/setrlimit have no safe wrapper in std")]
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &raw mut l) == 0 {
            l.rlim_cur = l.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &raw const l);
        }
    }
}
