//! `podnet`: every role of a podnet cluster in one binary.
//!
//! This file only parses flags, sets up tracing and maps errors to exit
//! codes: 2 for usage (clap: an unknown flag, a missing argument), 64 for
//! bad input (a flag's value, a file or manifest), 1 for anything that
//! failed at run time.

mod cli;
mod kubectl;
mod roles;

use std::process::ExitCode;

use clap::Parser;

/// Exit code for bad input: a flag's value, a malformed file, an invalid
/// manifest.
const EXIT_BAD_INPUT: u8 = 64;

fn init_tracing(default: &str) {
    use std::io::IsTerminal;
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("PODNET_LOG")
        .or_else(|_| EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        // Roles log to files in the state dir: colour only on a terminal.
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    if std::env::var("PODNET_LOG_FORMAT").is_ok_and(|f| f == "json") {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// `podnet get pods | head`: a reader that went away ends podnet quietly
/// with the status a shell reports for SIGPIPE, as it ends C tools, instead
/// of the panic `println!` raises on a closed stdout.
fn quiet_on_broken_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("");
        if message.starts_with("failed printing to stdout") && message.contains("Broken pipe") {
            std::process::exit(141);
        }
        default(info);
    }));
}

/// A flag clap refused: a value that is not valid is bad input (64, as
/// sysexits' EX_USAGE), the rest keep clap's own exit (2 for usage, 0 for
/// `--help` and `--version`).
fn flag_error(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    let bad_value = matches!(
        e.kind(),
        ErrorKind::InvalidValue | ErrorKind::ValueValidation
    );
    // Printing to a closed terminal is no reason to change the exit code.
    let _ = e.print();
    if bad_value {
        ExitCode::from(EXIT_BAD_INPUT)
    } else {
        ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2))
    }
}

fn main() -> ExitCode {
    quiet_on_broken_pipe();
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return flag_error(e),
    };
    init_tracing(if cli.command.is_role() {
        "info"
    } else {
        "warn"
    });
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cli::dispatch(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            if e.downcast_ref::<podnet_lab::InputError>().is_some() {
                ExitCode::from(EXIT_BAD_INPUT)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}
