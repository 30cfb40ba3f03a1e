//! The `pbn` binary: parse arguments, set up tracing, dispatch, return an exit code.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = pbn::cli::Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_new(&cli.log)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
    match pbn::cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) if pbn::cli::is_closed_output(&err) => ExitCode::from(pbn::cli::exit_code(&err)),
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(pbn::cli::exit_code(&err))
        }
    }
}
