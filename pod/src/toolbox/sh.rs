//! `sh -c 'SCRIPT'` (also as `bash`, `ash`, `dash`): toolbox commands joined
//! by `;` (or a newline), `&&` and `||`, with the shell's quoting, so that
//! one-liners from a real cluster's runbook (`sh -c 'nslookup web || cat
//! /etc/resolv.conf'`) run unchanged.
//!
//! An and-or list runs left to right: after `&&` the next command runs only
//! if the last status was 0, after `||` only if it was not, and a skipped
//! command keeps the status, as in POSIX sh. The exit code is the last
//! command's. `exit [N]` ends the script.
//!
//! [`parse`] is pure: it finds the operators outside quotes and hands each
//! command's text to `shlex` for word splitting (quotes, backslashes,
//! comments). Deliberately not here, and refused with exit 2 before
//! anything runs: pipes, redirections, background jobs, variables and
//! substitutions (`$`, backquotes), subshells, assignments, compound
//! commands (`if`, `for`, ...) and scripts from files or stdin. Every
//! command of a script sees the whole of the exec's stdin.

use super::{Output, Process, USAGE, dispatch_boxed};

/// How a command is joined to the one before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Join {
    /// The first command, or after `;` or a newline: always runs.
    Always,
    /// After `&&`: runs if the last status was 0.
    And,
    /// After `||`: runs if the last status was not 0.
    Or,
}

/// Why a script is not run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum ShError {
    /// What dash calls a syntax error.
    Syntax(String),
    /// Shell syntax podnet's toolbox does not implement.
    Unsupported(&'static str),
}

impl ShError {
    fn message(&self) -> String {
        match self {
            ShError::Syntax(what) => format!("sh: 1: Syntax error: {what}\n"),
            ShError::Unsupported(what) => format!(
                "sh: {what} not supported in podnet's toolbox (only commands joined by ';', '&&' and '||')\n"
            ),
        }
    }
}

/// Reserved words that start compound commands.
const KEYWORDS: &[&str] = &[
    "if", "then", "else", "elif", "fi", "for", "while", "until", "do", "done", "case", "esac",
    "function", "select", "!", "{", "}", "[[", "]]",
];

/// What ends a command's text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    Semicolon,
    Newline,
    And,
    Or,
    Script,
}

/// Splits `script` into its commands and how each is joined to the last.
pub(super) fn parse(script: &str) -> Result<Vec<(Join, Vec<String>)>, ShError> {
    #[derive(PartialEq)]
    enum Quote {
        None,
        Single,
        Double,
    }
    let mut commands = Vec::new();
    let mut join = Join::Always;
    let mut start = 0;
    let mut quote = Quote::None;
    let mut chars = script.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        let end = match (&quote, c) {
            (Quote::Single, '\'') => {
                quote = Quote::None;
                None
            }
            (Quote::Single, _) => None,
            (Quote::Double, '"') => {
                quote = Quote::None;
                None
            }
            (Quote::Double, '\\') | (Quote::None, '\\') => {
                chars.next();
                None
            }
            (_, '$') => return Err(ShError::Unsupported("variables and substitutions ($) are")),
            (_, '`') => return Err(ShError::Unsupported("command substitution (`) is")),
            (Quote::Double, _) => None,
            (Quote::None, '\'') => {
                quote = Quote::Single;
                None
            }
            (Quote::None, '"') => {
                quote = Quote::Double;
                None
            }
            (Quote::None, '#') if starts_word(script, i) => {
                // A comment runs to the end of the line.
                while chars.peek().is_some_and(|&(_, c)| c != '\n') {
                    chars.next();
                }
                None
            }
            (Quote::None, ';') if chars.peek().is_some_and(|&(_, c)| c == ';') => {
                return Err(ShError::Unsupported("case clauses (;;) are"));
            }
            (Quote::None, ';') => Some(End::Semicolon),
            (Quote::None, '\n') => Some(End::Newline),
            (Quote::None, '&') if chars.peek().is_some_and(|&(_, c)| c == '&') => {
                chars.next();
                Some(End::And)
            }
            (Quote::None, '&') => return Err(ShError::Unsupported("background jobs (&) are")),
            (Quote::None, '|') if chars.peek().is_some_and(|&(_, c)| c == '|') => {
                chars.next();
                Some(End::Or)
            }
            (Quote::None, '|') => return Err(ShError::Unsupported("pipes (|) are")),
            (Quote::None, '<' | '>') => return Err(ShError::Unsupported("redirections (< >) are")),
            (Quote::None, '(' | ')') => return Err(ShError::Unsupported("subshells ( ) are")),
            (Quote::None, _) => None,
        };
        if let Some(end) = end {
            push(&mut commands, &mut join, &script[start..i], end)?;
            start = i + if matches!(end, End::And | End::Or) {
                2
            } else {
                1
            };
        }
    }
    if quote != Quote::None {
        return Err(ShError::Syntax("Unterminated quoted string".to_owned()));
    }
    push(&mut commands, &mut join, &script[start..], End::Script)?;
    for (_, words) in &commands {
        let first = words.first().map(String::as_str).unwrap_or_default();
        if KEYWORDS.contains(&first) {
            return Err(ShError::Unsupported(
                "compound commands (if, for, while, ...) are",
            ));
        }
        if first.split_once('=').is_some_and(|(name, _)| is_name(name)) {
            return Err(ShError::Unsupported("variable assignments are"));
        }
    }
    Ok(commands)
}

/// Adds the command in `text`, which `end` ended, joined by `join`; leaves
/// in `join` how the next one is joined.
fn push(
    commands: &mut Vec<(Join, Vec<String>)>,
    join: &mut Join,
    text: &str,
    end: End,
) -> Result<(), ShError> {
    let words = words(text)?;
    if words.is_empty() {
        return match end {
            // A blank line, also after `&&` or `||` (the list goes on).
            End::Newline => Ok(()),
            End::Script if *join == Join::Always => Ok(()),
            End::Script => Err(ShError::Syntax("end of file unexpected".to_owned())),
            End::Semicolon => Err(ShError::Syntax("\";\" unexpected".to_owned())),
            End::And => Err(ShError::Syntax("\"&&\" unexpected".to_owned())),
            End::Or => Err(ShError::Syntax("\"||\" unexpected".to_owned())),
        };
    }
    commands.push((*join, words));
    *join = match end {
        End::And => Join::And,
        End::Or => Join::Or,
        End::Semicolon | End::Newline | End::Script => Join::Always,
    };
    Ok(())
}

/// Does a `#` at `i` start a word (and so a comment)?
fn starts_word(script: &str, i: usize) -> bool {
    script[..i]
        .chars()
        .next_back()
        .is_none_or(|c| c.is_whitespace() || c == ';' || c == '&' || c == '|')
}

fn is_name(text: &str) -> bool {
    let mut chars = text.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The words of one command, split and unquoted as sh does.
fn words(text: &str) -> Result<Vec<String>, ShError> {
    shlex::split(text).ok_or_else(|| ShError::Syntax("Unterminated quoted string".to_owned()))
}

pub(super) async fn run(process: Process<'_>, argv: &[String], out: &mut Output) -> i32 {
    let shell = argv
        .first()
        .map(|c| c.rsplit('/').next().unwrap_or(c))
        .unwrap_or("sh");
    let script = match argv.get(1..).unwrap_or_default() {
        [] => {
            return out.fail(
                USAGE,
                format!(
                    "{shell}: podnet's toolbox has no interactive shell; run one command, or several with {shell} -c 'CMD; CMD'\n"
                ),
            );
        }
        // Further arguments are $0, $1, ...: accepted, and unused since
        // variables are not.
        [flag, script, ..] if flag == "-c" => script,
        [flag] if flag == "-c" => {
            return out.fail(USAGE, format!("{shell}: -c: option requires an argument\n"));
        }
        [option, ..] if option.starts_with('-') => {
            return out.fail(
                USAGE,
                format!("{shell}: option {option} is not supported in podnet's toolbox (only -c 'SCRIPT')\n"),
            );
        }
        [file, ..] => {
            return out.fail(
                USAGE,
                format!(
                    "{shell}: cannot run script {file}: podnet's toolbox has no files; use {shell} -c 'CMD; CMD'\n"
                ),
            );
        }
    };
    let commands = match parse(script) {
        Ok(commands) => commands,
        Err(error) => return out.fail(USAGE, error.message()),
    };
    let mut status = 0;
    for (join, words) in &commands {
        let runs = match join {
            Join::Always => true,
            Join::And => status == 0,
            Join::Or => status != 0,
        };
        if !runs {
            continue;
        }
        if words[0] == "exit" {
            return match words.get(1) {
                None => status,
                // The shell's exit status is the low byte.
                Some(code) => match code.parse::<i64>() {
                    Ok(code) => i32::from(code.rem_euclid(256) as u8),
                    Err(_) => out.fail(USAGE, format!("sh: 1: exit: Illegal number: {code}\n")),
                },
            };
        }
        status = dispatch_boxed(process, words, out).await;
    }
    status
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(script: &str, expected: Result<Vec<(Join, &[&str])>, ShError>) {
        let expected = expected.map(|commands| {
            commands
                .into_iter()
                .map(|(join, words)| (join, words.iter().map(|w| (*w).to_owned()).collect()))
                .collect::<Vec<_>>()
        });
        assert_eq!(parse(script), expected, "{script}");
    }

    #[test]
    fn scripts_split_into_joined_commands() {
        use Join::*;
        check("true", Ok(vec![(Always, &["true"])]));
        check(
            "false || echo ok",
            Ok(vec![(Always, &["false"]), (Or, &["echo", "ok"])]),
        );
        check(
            "a;b && c||d",
            Ok(vec![
                (Always, &["a"]),
                (Always, &["b"]),
                (And, &["c"]),
                (Or, &["d"]),
            ]),
        );
        check(
            "echo 'a; b' \"c && d\" e\\;f",
            Ok(vec![(Always, &["echo", "a; b", "c && d", "e;f"])]),
        );
        check(
            "echo a\necho b;",
            Ok(vec![(Always, &["echo", "a"]), (Always, &["echo", "b"])]),
        );
        check("echo a # not ; this", Ok(vec![(Always, &["echo", "a"])]));
        check("echo a#b", Ok(vec![(Always, &["echo", "a#b"])]));
        check(
            "curl -s 'http://web/?a=1&b=2'",
            Ok(vec![(Always, &["curl", "-s", "http://web/?a=1&b=2"])]),
        );
        check("", Ok(vec![]));
    }

    #[test]
    fn unsupported_and_broken_scripts_are_refused() {
        let unsupported = |script: &str| match parse(script) {
            Err(ShError::Unsupported(_)) => {}
            other => panic!("{script}: {other:?}"),
        };
        let syntax = |script: &str| match parse(script) {
            Err(ShError::Syntax(_)) => {}
            other => panic!("{script}: {other:?}"),
        };
        unsupported("echo a | cat");
        unsupported("echo a > /tmp/x");
        unsupported("cat < /etc/hosts");
        unsupported("sleep 1 &");
        unsupported("echo $HOME");
        unsupported("echo \"$HOME\"");
        unsupported("echo `hostname`");
        unsupported("(echo a)");
        unsupported("X=1 env");
        unsupported("if true; then echo a; fi");
        syntax("echo 'a");
        syntax("echo \"a");
        syntax("; echo a");
        syntax("true && ; echo a");
        syntax("true &&");
        syntax("true || ");
        // Quoted, they are plain words.
        assert!(parse("echo '$HOME | x > y'").is_ok());
    }
}
