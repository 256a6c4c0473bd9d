//! The `swarm-sticky` binary: parse, configure, build, run.
//!
//! Exit status: 0 after a clean drain (or a valid cookie or configuration
//! for the tools), 64 for an invalid configuration (nothing was bound), 1
//! for a failure to start or run (or an invalid cookie).

use std::{process::ExitCode, time::Duration};

use anyhow::Context as _;
use clap::Parser as _;
use proxy_user::{
    acme,
    app::{self, App},
    cli::{self, AcmeCommand, AcmeStatusArgs, Cli, Command, CookieCommand, CookieDecodeArgs, DemoArgs, RunArgs},
    config::{self, Config, EXIT_CONFIG, KeyUse, LogFormat},
    demo, discovery, image, inspect, probe, services,
};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            let usage = err.use_stderr();
            let _ = err.print();
            return if usage { config_exit() } else { ExitCode::SUCCESS };
        }
    };
    if !matches!(cli.command, Command::Run(_)) {
        app::init_logging(LogFormat::Text);
    }
    match cli.command {
        Command::Run(args) => run(&args),
        Command::Demo(args) => report(demo(&args)),
        Command::Whoami(args) => report(
            tokio_main(demo::run_whoami(args.listen, args.name)).with_context(|| format!("whoami on {}", args.listen)),
        ),
        Command::Cookie(CookieCommand::Decode(args)) => cookie_decode(&args),
        Command::CheckConfig(args) => check_config(&args.file),
        Command::Acme(AcmeCommand::Status(args)) => report(acme_status(&args)),
        Command::Probe(args) => match tokio_main(probe::probe(
            &args.url,
            Duration::from_secs(args.timeout),
            args.this_container,
        )) {
            Ok(_) => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("probe {}: {err:#}", args.url);
                ExitCode::FAILURE
            }
        },
        Command::Image(args) => report(
            tokio_main(image::build_own(&args.docker_host, &args.tags))
                .map(|tags| println!("built {}", tags.join(", ")))
                .context("build the image"),
        ),
        Command::Anchor => report(tokio_main(discovery::anchor::wait_for_stop())),
    }
}

/// `swarm-sticky run`.
fn run(args: &RunArgs) -> ExitCode {
    let config = match Config::from_run_args(args) {
        Ok(c) => c,
        Err(err) => return config_error(err),
    };
    app::init_logging(config.log_format);
    report(App::build(config).and_then(App::run))
}

/// `swarm-sticky acme status`.
fn acme_status(args: &AcmeStatusArgs) -> anyhow::Result<()> {
    let managed = tokio_main(acme::report::fetch(args.admin))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&managed)?);
    } else {
        print!("{}", acme::report::table(&managed));
    }
    Ok(())
}

/// `swarm-sticky demo`: three whoami backends behind the balancer.
fn demo(args: &DemoArgs) -> anyhow::Result<()> {
    let backends = demo::start_demo_backends(3).context("start the demo backends")?;
    let services = demo::demo_services(&backends);
    let admin = cli::DEFAULT_ADMIN.parse().context("the admin address")?;
    let cert = demo::localhost_certificate().context("write the demo's localhost certificate")?;
    let https = Some((args.tls_listen, &cert));
    println!(
        "{}",
        demo::demo_instructions(args.listen, https, admin, &services, &backends)
    );
    let config = Config::demo(args, services, admin, Some(cert.clone()))?;
    let served = App::build(config).and_then(App::run);
    if let Some(dir) = cert.chain.parent() {
        // The certificate was the demo's own.
        let _ = std::fs::remove_dir_all(dir);
    }
    served
}

/// `swarm-sticky cookie decode`: exit 0 when the cookie is valid, 1 when it
/// is not, 64 when the configuration is invalid.
fn cookie_decode(args: &CookieDecodeArgs) -> ExitCode {
    let (cfg, keys) = match config::decode_config(args) {
        Ok(c) => c,
        Err(err) => return config_error(err),
    };
    let report = keys
        .load(KeyUse::Inspect)
        .map_err(anyhow::Error::from)
        .and_then(|keys| Ok(inspect::decode_cookie(&cfg, &keys.keyring, &args.value)?));
    match report {
        Ok(report) => {
            if args.json {
                println!("{}", serde_json::to_string_pretty(&report).unwrap_or_default());
            } else {
                println!("{report}");
            }
            if report.valid {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(err) => {
            eprintln!("swarm-sticky: {err:#}");
            config_exit()
        }
    }
}

/// `swarm-sticky check-config FILE`: exit 0 and a description when valid,
/// 64 and the offending field when not.
fn check_config(file: &std::path::Path) -> ExitCode {
    let parsed = std::fs::read_to_string(file)
        .map_err(|err| format!("cannot read {}: {err}", file.display()))
        .and_then(|text| services::ServicesConfig::from_toml_str(&text).map_err(|e| e.to_string()));
    match parsed {
        Ok(cfg) => {
            print!("{}", inspect::describe(&cfg));
            ExitCode::SUCCESS
        }
        Err(err) => config_error(err),
    }
}

/// Runs `fut` to completion on a runtime of its own (the small commands).
fn tokio_main<T, E>(fut: impl Future<Output = Result<T, E>>) -> anyhow::Result<T>
where
    E: std::error::Error + Send + Sync + 'static,
{
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    Ok(rt.block_on(fut)?)
}

fn config_error(err: impl std::fmt::Display) -> ExitCode {
    eprintln!("swarm-sticky: invalid configuration: {err}");
    config_exit()
}

fn config_exit() -> ExitCode {
    ExitCode::from(u8::try_from(EXIT_CONFIG).unwrap_or(1))
}

fn report(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!("{err:#}");
            ExitCode::FAILURE
        }
    }
}
