//! How often a failing store is reported: the first failure at once, then
//! at most one line per [`FailureLog::INTERVAL`] with the number left
//! unsaid, and one line when it works again. A disk that fails every write
//! of a busy control plane must not flood its log, yet an operator reading
//! it must see when it started, that it goes on, and when it ended.
//!
//! Pure: the caller passes `now` and does the logging.

use std::time::{Duration, Instant};

#[derive(Debug, Default)]
pub(super) struct FailureLog {
    last_logged: Option<Instant>,
    /// Failures since the last line.
    unlogged: u64,
    /// The failing period: when it began and how many failures it has had.
    failing: Option<(Instant, u64)>,
}

/// What to say about a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Say {
    /// Failures since the last line that were not logged.
    pub suppressed: u64,
}

/// What to say when the store works again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Recovered {
    pub failures: u64,
    pub after: Duration,
}

impl FailureLog {
    pub(super) const INTERVAL: Duration = Duration::from_secs(10);

    /// An operation failed at `now`: `Some` when this one is to be logged.
    pub(super) fn failed(&mut self, now: Instant) -> Option<Say> {
        let (_, failures) = self.failing.get_or_insert((now, 0));
        *failures += 1;
        let due = self
            .last_logged
            .is_none_or(|at| now.saturating_duration_since(at) >= Self::INTERVAL);
        if due {
            let say = Say {
                suppressed: self.unlogged,
            };
            self.last_logged = Some(now);
            self.unlogged = 0;
            Some(say)
        } else {
            self.unlogged += 1;
            None
        }
    }

    /// An operation succeeded at `now`: `Some` when it ends a failing period.
    pub(super) fn succeeded(&mut self, now: Instant) -> Option<Recovered> {
        let (since, failures) = self.failing.take()?;
        // The next failure starts a new period and is logged at once.
        self.last_logged = None;
        self.unlogged = 0;
        Some(Recovered {
            failures,
            after: now.saturating_duration_since(since),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `Err(ms)` is a failure at `ms`, `Ok(ms)` a success; the expected line
    /// per event: `F(suppressed)`, `R(failures)`, or `-` for none.
    #[derive(Debug, PartialEq)]
    enum Line {
        F(u64),
        R(u64),
        None,
    }

    fn check(events: &[Result<u64, u64>], expected: &[Line]) {
        let t0 = Instant::now();
        let mut log = FailureLog::default();
        let lines: Vec<Line> = events
            .iter()
            .map(|ev| match *ev {
                Err(ms) => log
                    .failed(t0 + Duration::from_millis(ms))
                    .map_or(Line::None, |s| Line::F(s.suppressed)),
                Ok(ms) => log
                    .succeeded(t0 + Duration::from_millis(ms))
                    .map_or(Line::None, |r| Line::R(r.failures)),
            })
            .collect();
        assert_eq!(lines, expected, "{events:?}");
    }

    #[test]
    fn rate_limited_with_counts_and_recovery() {
        use Line::*;
        // Successes alone say nothing.
        check(&[Ok(0), Ok(1)], &[None, None]);
        // The first failure at once; the rest within the interval are counted
        // and reported with the next line.
        check(
            &[Err(0), Err(1), Err(2), Err(10_000), Err(10_001)],
            &[F(0), None, None, F(2), None],
        );
        // Recovery names every failure of the period, and the next failure
        // is news again.
        check(
            &[Err(0), Err(1), Err(2), Ok(3), Ok(4), Err(5)],
            &[F(0), None, None, R(3), None, F(0)],
        );
    }

    #[test]
    fn recovery_measures_the_period() {
        let t0 = Instant::now();
        let mut log = FailureLog::default();
        log.failed(t0 + Duration::from_secs(1));
        log.failed(t0 + Duration::from_secs(2));
        let r = log.succeeded(t0 + Duration::from_secs(4)).unwrap();
        assert_eq!(
            r,
            Recovered {
                failures: 2,
                after: Duration::from_secs(3)
            }
        );
    }
}
