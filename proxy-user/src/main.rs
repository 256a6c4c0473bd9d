//! The `swarm-sticky` binary: parse, validate, run.
//!
//! Exit status: 0 after a clean drain, 64 for an invalid configuration
//! (nothing was bound), 1 for a failure to start or run.

use std::{process::ExitCode, sync::Arc};

use clap::Parser as _;
use proxy_user::{
    app,
    cli::{Cli, Command, LogFormat},
    config::{Config, EXIT_CONFIG},
    worker::{ConnInfo, ConnectionHandler, LocalFuture, Shutdown},
};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            let usage = err.use_stderr();
            let _ = err.print();
            return if usage { ExitCode::from(EXIT_CONFIG as u8) } else { ExitCode::SUCCESS };
        }
    };
    match cli.command {
        Command::Run(args) => {
            init_logging(args.log_format);
            let config = match Config::from_run_args(&args) {
                Ok(c) => c,
                Err(err) => {
                    eprintln!("swarm-sticky: invalid configuration: {err}");
                    return ExitCode::from(EXIT_CONFIG as u8);
                }
            };
            report(app::run(&config, Arc::new(Fixed), Box::new(|| {})))
        }
        Command::Demo(_) => {
            eprintln!("swarm-sticky: demo is not available yet");
            ExitCode::FAILURE
        }
    }
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

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SWARM_STICKY_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_ansi(ansi).with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Answers every request with the worker's name (until services exist).
struct Fixed;

impl ConnectionHandler for Fixed {
    fn handle(&self, stream: tokio::net::TcpStream, conn: ConnInfo, _shutdown: Shutdown) -> LocalFuture {
        Box::pin(async move {
            use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
            let mut stream = stream;
            let mut buf = [0u8; 4096];
            if matches!(stream.read(&mut buf).await, Ok(n) if n > 0) {
                let body = format!("worker {}\n", conn.worker);
                let resp = format!("HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}", body.len());
                let _ = stream.write_all(resp.as_bytes()).await;
            }
        })
    }
}
