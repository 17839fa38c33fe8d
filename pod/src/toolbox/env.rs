//! `env` and `printenv`: the environment of the container the command is
//! exec'd in, as GNU coreutils print it (`NAME=value`, one a line, in the
//! environment's order).
//!
//! The environment is what the node computed when the container started
//! (the pod spec's `env`, `HOSTNAME`, `PATH` and the Service variables the
//! kubelet injects); it is handed to [`super::run`], nothing here makes it
//! up. `env NAME=VALUE... COMMAND` runs a toolbox command with the
//! assignments added. Deliberately not here: `env -i`, `-u`, `-0` and
//! `printenv -0`.

use super::{EnvVar, Output, Process, dispatch_boxed};

/// GNU env's exit code for its own failures (bad option).
const ENV_FAILURE: i32 = 125;

/// `NAME=value` lines, one per variable.
pub(super) fn format_env(env: &[EnvVar]) -> String {
    env.iter()
        .map(|(name, value)| format!("{name}={value}\n"))
        .collect()
}

/// `env [NAME=VALUE]... [COMMAND [ARG]...]`.
pub(super) async fn env(process: Process<'_>, argv: &[String], out: &mut Output) -> i32 {
    let mut env: Vec<EnvVar> = process.env.to_vec();
    let mut rest = argv.get(1..).unwrap_or_default();
    if let Some(first) = rest.first() {
        match first.as_str() {
            "--help" => {
                out.print(
                    "Usage: env [NAME=VALUE]... [COMMAND [ARG]...]\n\
                     Print the container's environment, or run COMMAND with NAME=VALUE added (podnet toolbox).\n",
                );
                return 0;
            }
            "--" => rest = &rest[1..],
            option if option.starts_with('-') && option.len() > 1 => {
                return out.fail(
                    ENV_FAILURE,
                    format!(
                        "env: unsupported option '{option}' in podnet's toolbox (only NAME=VALUE... [COMMAND])\n"
                    ),
                );
            }
            _ => {}
        }
    }
    while let Some((name, value)) = rest.first().and_then(|word| word.split_once('=')) {
        if name.is_empty() {
            break;
        }
        set(&mut env, name, value);
        rest = &rest[1..];
    }
    if rest.is_empty() {
        out.print(format_env(&env));
        return 0;
    }
    let process = Process {
        env: &env,
        ..process
    };
    dispatch_boxed(process, rest, out).await
}

/// Sets `name` in place if it is there (its position kept), else appends it.
fn set(env: &mut Vec<EnvVar>, name: &str, value: &str) {
    match env.iter_mut().find(|(n, _)| n == name) {
        Some(entry) => entry.1 = value.to_owned(),
        None => env.push((name.to_owned(), value.to_owned())),
    }
}

/// `printenv [NAME]...`: all variables, or the values of those named; exit
/// 1 if one of them is not set.
pub(super) fn printenv(env: &[EnvVar], argv: &[String], out: &mut Output) -> i32 {
    let names = argv.get(1..).unwrap_or_default();
    if names.is_empty() {
        out.print(format_env(env));
        return 0;
    }
    let mut code = 0;
    for name in names {
        if name.starts_with('-') {
            return out.fail(
                2,
                format!("printenv: unsupported option '{name}' in podnet's toolbox\n"),
            );
        }
        // The last definition is the one a process sees.
        match env.iter().rev().find(|(n, _)| n == name) {
            Some((_, value)) => {
                out.print(format!("{value}\n"));
            }
            None => code = 1,
        }
    }
    code
}
