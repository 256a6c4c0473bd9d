//! `cargo xtask`: orchestration only (the eBPF object is built by
//! `proxy-user/build.rs`).
//!
//! * `setup`: install what is missing (nightly rust-src, bpf-linker built
//!   against the nightly's own LLVM under `target/tools/`); idempotent.
//! * `build`, `run -- ARGS`, `test`, `lint`, `bench steering|proxy|tls`,
//!   `install [--root DIR]`.
#![expect(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a command-line tool talks on stdout/stderr"
)]

mod bench;
mod cmd;
mod docker;
mod install;
mod packages;
mod setup;
mod tasks;

use clap::{Parser, Subcommand};

/// Development tasks for swarm-sticky.
#[derive(Parser)]
#[command(name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Install the toolchain parts the eBPF build needs (idempotent).
    Setup,
    /// Build everything (release), eBPF object included.
    Build,
    /// Build, then run swarm-sticky with ARGS (the demo when none are given).
    Run {
        /// Arguments for swarm-sticky.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Run every test tier: unit, unprivileged end-to-end, privileged (root).
    Test {
        /// Only tests whose name contains this.
        filter: Option<String>,
    },
    /// rustfmt check and both clippy passes with -D warnings.
    Lint,
    /// Build swarm-sticky's container image (release binary) on the local
    /// engine, for `deploy/swarm-sticky.yml`.
    Image {
        /// Tags (repeatable; default swarm-sticky:<version> and :latest).
        #[arg(long = "tag")]
        tags: Vec<String>,
    },
    /// Install the binary, the systemd unit and a default configuration.
    Install {
        /// Staging root (default: the real one).
        #[arg(long, default_value = "/")]
        root: std::path::PathBuf,
    },
    /// Benchmarks: `steering` (connection rate per steering mode), `proxy`
    /// or `tls` (both against HAProxy).
    Bench {
        /// Which benchmark.
        #[arg(value_enum)]
        which: bench::Which,
        /// Seconds per measured run.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Rounds of the measured rows (`proxy`, `tls`); a summary gives the
        /// median of the rounds' ratios to HAProxy.
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
        rounds: u32,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.task {
        Task::Setup => setup::run().map(drop),
        Task::Build => tasks::build(),
        Task::Run { args } => tasks::run(&args),
        Task::Test { filter } => tasks::test(filter.as_deref()),
        Task::Lint => tasks::lint(),
        Task::Image { tags } => tasks::image(&tags),
        Task::Install { root } => install::run(&root),
        Task::Bench { which, seconds, rounds } => bench::run(which, seconds, rounds),
    }
}
