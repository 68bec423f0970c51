//! The `musehub` binary: parse arguments, set up logging, run, turn errors into exit codes.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = musehub::cli::Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("MUSEHUB_LOG")
        .unwrap_or_else(|_| "info".into());
    // Colours only for a person at a terminal, never in the journal or a log file.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .init();
    match musehub::cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("musehub: {e:#}");
            ExitCode::FAILURE
        }
    }
}
