//! A swarm-sticky process under test, started inside a namespace.
//!
//! Its stderr is collected line by line so that a test can wait (with a
//! deadline) for a log line such as `ready`, and read what it said.

use std::{
    io::{BufRead as _, BufReader},
    process::{Child, Command, ExitStatus, Stdio},
    sync::{Arc, Condvar, Mutex},
    time::{Duration, Instant},
};

use super::netns::Netns;

/// The collected stderr lines, with a condition variable for waiters.
type Lines = Arc<(Mutex<Vec<String>>, Condvar)>;

/// A running swarm-sticky; killed on drop.
pub struct Proxy {
    child: Child,
    lines: Lines,
    status: Option<ExitStatus>,
}

/// How to start it.
pub struct Spawn<'a> {
    /// Namespace to run in.
    pub netns: &'a Netns,
    /// Arguments after the binary, e.g. `["run", "--listen", …]`.
    pub args: Vec<String>,
    /// Run through `setpriv` with these arguments first (to drop privileges).
    pub setpriv: Option<Vec<String>>,
}

impl Proxy {
    /// Starts swarm-sticky as described.
    pub fn spawn(spec: Spawn<'_>) -> Self {
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net={}", spec.netns.path().display()));
        if let Some(setpriv) = &spec.setpriv {
            cmd.arg("setpriv").args(setpriv);
        }
        cmd.arg(super::binary()).args(&spec.args);
        Self::start(cmd)
    }

    /// Starts swarm-sticky with `args` inside the network namespace whose
    /// file is `netns` (e.g. `/run/netns/<name>`): a node of a multi-node
    /// swarm, whose namespace the harness made with `ip netns add`.
    pub fn spawn_at(netns: &std::path::Path, args: &[String]) -> Self {
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net={}", netns.display()))
            .arg(super::binary())
            .args(args);
        Self::start(cmd)
    }

    /// Starts swarm-sticky with `args` in this process's own namespaces
    /// (the swarm tests: it needs the host's view of Docker).
    pub fn spawn_here(args: &[String]) -> Self {
        let mut cmd = Command::new(super::binary());
        cmd.args(args);
        Self::start(cmd)
    }

    fn start(mut cmd: Command) -> Self {
        // SWARM_STICKY_TEST_LOG (e.g. `debug`) raises the level when a
        // test needs a closer look.
        let level = std::env::var("SWARM_STICKY_TEST_LOG").unwrap_or_else(|_| "info".to_owned());
        cmd.env("SWARM_STICKY_LOG", level).env("NO_COLOR", "1");
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start swarm-sticky");
        let lines: Lines = Arc::default();
        let stderr = child.stderr.take().expect("piped stderr");
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                eprintln!("[swarm-sticky] {line}");
                let (m, cv) = &*sink;
                m.lock().expect("lines lock").push(line);
                cv.notify_all();
            }
        });
        Self {
            child,
            lines,
            status: None,
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits until a stderr line contains `needle`; panics after `timeout`
    /// with everything the process said.
    pub fn wait_for_line(&mut self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        let (m, cv) = &*self.lines;
        let mut lines = m.lock().expect("lines lock");
        loop {
            if let Some(l) = lines.iter().find(|l| l.contains(needle)) {
                return l.clone();
            }
            let now = Instant::now();
            assert!(
                now < deadline,
                "no line containing {needle:?} within {timeout:?}; stderr:\n{}",
                lines.join("\n")
            );
            lines = cv.wait_timeout(lines, deadline - now).expect("lines lock").0;
        }
    }

    /// Waits until `n` stderr lines contain `needle`; panics after
    /// `timeout` with everything the process said.
    pub fn wait_for_lines(&mut self, needle: &str, n: usize, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let (m, cv) = &*self.lines;
        let mut lines = m.lock().expect("lines lock");
        loop {
            if lines.iter().filter(|l| l.contains(needle)).count() >= n {
                return;
            }
            let now = Instant::now();
            assert!(
                now < deadline,
                "not {n} lines containing {needle:?} within {timeout:?}; stderr:\n{}",
                lines.join("\n")
            );
            lines = cv.wait_timeout(lines, deadline - now).expect("lines lock").0;
        }
    }

    /// Waits for the `ready` log line.
    pub fn wait_ready(&mut self) {
        self.wait_for_line(" ready ", Duration::from_secs(20));
    }

    /// Everything the process wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.lines.0.lock().expect("lines lock").join("\n")
    }

    /// Sends a signal (by number) to the process.
    pub fn signal(&self, sig: i32) {
        let pid = libc::pid_t::try_from(self.child.id()).expect("pid fits");
        // SAFETY: kill has no memory effects; the pid is our own child.
        #[expect(unsafe_code, reason = "kill has no safe wrapper in std")]
        let rc = unsafe { libc::kill(pid, sig) };
        assert_eq!(rc, 0, "kill {pid}: {}", std::io::Error::last_os_error());
    }

    /// The exit status if the process exits within `window`, else `None`
    /// (it is still running).
    pub fn wait_exit_within(&mut self, window: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + window;
        while self.status.is_none() && Instant::now() < deadline {
            self.status = self.child.try_wait().expect("try_wait");
            std::thread::sleep(Duration::from_millis(10));
        }
        self.status
    }

    /// Waits for the process to exit; panics after `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        if let Some(s) = self.status {
            return s;
        }
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(s) = self.child.try_wait().expect("try_wait") {
                // Let the stderr reader catch up with the last lines.
                std::thread::sleep(Duration::from_millis(20));
                self.status = Some(s);
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "swarm-sticky did not exit within {timeout:?}; stderr:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if self.status.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
