//! The `pbn` binary: parse arguments, set up tracing, dispatch, return an exit code.

use std::process::ExitCode;

use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches};

/// The log filter when neither `--log` nor `PBN_LOG` is given: warnings, plus one line when the
/// service starts and stops and one per connection state change. async-nats' own events are
/// off: pbn reconnects itself and logs that, and async-nats would report a routine server
/// restart as an error. `--log debug` shows everything, async-nats included.
const DEFAULT_FILTER: &str =
    "warn,pbn::server=info,pbn::server::callout=warn,pbn::server::callout::listener=info,\
    pbn::server::publisher=warn,pbn::server::sessions=warn,pbn::server::lifecycle=warn,\
    pbn::cli=info,async_nats=off";

fn main() -> ExitCode {
    let matches = pbn::Cli::command().get_matches();
    let cli = match pbn::Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(err) => err.exit(),
    };
    let spec = match matches.value_source("log") {
        Some(ValueSource::DefaultValue) | None => DEFAULT_FILTER,
        Some(_) => cli.log.as_str(),
    };
    let filter = tracing_subscriber::EnvFilter::try_new(pbn::log_filter(&cli, spec))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    use std::io::IsTerminal;
    let logs = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let explicit =
        !matches!(matches.value_source("log_format"), Some(ValueSource::DefaultValue) | None);
    match pbn::log_format(&cli, explicit) {
        pbn::LogFormat::Json => logs.json().init(),
        pbn::LogFormat::Text => logs.with_ansi(std::io::stderr().is_terminal()).init(),
    }
    match pbn::run_cli(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            if let Some(message) = failure.message() {
                eprintln!("error: {message}");
            }
            ExitCode::from(failure.code())
        }
    }
}
