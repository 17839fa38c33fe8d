//! The live line while an experiment runs: elapsed of total, and per flow
//! the last whole second's achieved rate, errors and p99, and the faults
//! applied now. Drawn only on a terminal; elsewhere (CI logs, pipes) the
//! run prints its events and verdicts alone.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use podnet_experiment::series::FlowSeries;

/// The experiment's output: lines above the live line on a terminal,
/// plain lines elsewhere.
#[derive(Clone)]
pub struct Progress {
    bar: Option<ProgressBar>,
}

impl Progress {
    /// A live line over `length` seconds, when stdout is a terminal.
    pub fn new(length: f64) -> Progress {
        if !std::io::stdout().is_terminal() {
            return Progress { bar: None };
        }
        let bar = ProgressBar::with_draw_target(
            Some((length * 10.0).ceil() as u64),
            ProgressDrawTarget::stdout_with_hz(4),
        );
        let style = ProgressStyle::with_template("{bar:20} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar());
        bar.set_style(style);
        Progress { bar: Some(bar) }
    }

    /// A line of the run's log (a fault applied, a verdict).
    pub fn line(&self, text: &str) {
        match &self.bar {
            Some(bar) => bar.println(text),
            None => println!("{text}"),
        }
    }

    /// Redraws the live line, `now` seconds in, with the ids of the
    /// faults on now.
    pub fn update(
        &self,
        now: f64,
        length: f64,
        names: &[String],
        series: &[FlowSeries],
        active: &[&str],
    ) {
        let Some(bar) = &self.bar else {
            return;
        };
        bar.set_position((now * 10.0) as u64);
        bar.set_message(status(now, length, names, series, active));
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// `12.0/20.0s | users 100/s 3 err p99 12.1ms | cut`.
pub fn status(
    now: f64,
    length: f64,
    names: &[String],
    series: &[FlowSeries],
    active: &[&str],
) -> String {
    let mut parts = vec![format!("{now:.1}/{length:.1}s")];
    // The last second whose requests have all been sent.
    let last = (now.floor() as u64).saturating_sub(1);
    for (name, s) in names.iter().zip(series) {
        let b = s.second(last);
        let p99 = b.latency_quantile(0.99);
        let p99 = if p99.is_nan() {
            "-".to_string()
        } else {
            format!("{:.1}ms", p99 * 1e3)
        };
        parts.push(format!(
            "{name} {}/s {} err p99 {p99}",
            b.total(),
            b.errors()
        ));
    }
    if !active.is_empty() {
        parts.push(format!("faults: {}", active.join(", ")));
    }
    parts.join(" | ")
}

/// How often the live line is redrawn.
pub const EVERY: Duration = Duration::from_millis(250);

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use podnet_experiment::series::{Outcome, Sample};

    use super::*;

    #[test]
    fn the_live_line_shows_the_last_whole_second_and_the_faults_on() {
        let mut s = FlowSeries::new("");
        for i in 0..10u64 {
            s.record(&Sample {
                scheduled: Duration::from_millis(1000 + i * 100),
                lag: Duration::ZERO,
                latency: Duration::from_millis(5),
                outcome: if i < 2 { Outcome::Timeout } else { Outcome::Ok },
                served: None,
            });
        }
        let line = status(2.5, 20.0, &["users".into()], &[s], &["cut"]);
        assert_eq!(line, "2.5/20.0s | users 10/s 2 err p99 5.0ms | faults: cut");
        let quiet = status(0.5, 20.0, &["users".into()], &[FlowSeries::new("")], &[]);
        assert_eq!(quiet, "0.5/20.0s | users 0/s 0 err p99 -");
    }
}
