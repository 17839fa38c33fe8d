//! Which TCP connections the host DNS port keeps (pure: ids and `now` in,
//! decisions out). At most `cap` at once; a connection past the cap sheds
//! the one that has been idle (waiting for its client's next query) the
//! longest, oldest first on a tie, and is refused only when every
//! connection is busy with a query. Idle clients therefore can never lock
//! out a new one, and a busy one is never cut off for an idle newcomer.

use std::collections::BTreeMap;
use std::time::Instant;

/// What [`ConnTable::admit`] decided for a new connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admit {
    /// Keep it as `id`, closing `shed` first when it names one.
    Accepted { id: u64, shed: Option<u64> },
    /// Every connection is busy: close the new one.
    Refused,
}

#[derive(Debug)]
pub(crate) struct ConnTable {
    cap: usize,
    next_id: u64,
    /// By id (ids grow, so the smallest is the oldest): idle since when,
    /// or `None` while a query is being answered.
    conns: BTreeMap<u64, Option<Instant>>,
}

impl ConnTable {
    pub(crate) fn new(cap: usize) -> ConnTable {
        ConnTable {
            cap,
            next_id: 0,
            conns: BTreeMap::new(),
        }
    }

    /// A new connection arrived at `now`; it starts idle (no query yet).
    pub(crate) fn admit(&mut self, now: Instant) -> Admit {
        let mut shed = None;
        if self.conns.len() >= self.cap {
            let longest_idle = self
                .conns
                .iter()
                .filter_map(|(id, idle)| idle.map(|since| (since, *id)))
                .min();
            let Some((_, id)) = longest_idle else {
                return Admit::Refused;
            };
            self.conns.remove(&id);
            shed = Some(id);
        }
        let id = self.next_id;
        self.next_id += 1;
        self.conns.insert(id, Some(now));
        Admit::Accepted { id, shed }
    }

    /// Connection `id` is answering a query.
    pub(crate) fn busy(&mut self, id: u64) {
        if let Some(idle) = self.conns.get_mut(&id) {
            *idle = None;
        }
    }

    /// Connection `id` waits for its client's next query from `now` on.
    pub(crate) fn idle(&mut self, id: u64, now: Instant) {
        if let Some(idle) = self.conns.get_mut(&id) {
            *idle = Some(now);
        }
    }

    pub(crate) fn remove(&mut self, id: u64) {
        self.conns.remove(&id);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.conns.len()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// One step applied to a table.
    #[derive(Debug, Clone, Copy)]
    enum Step {
        /// A connection arrives at second `t`: what the table must decide.
        Arrive(u64, Admit),
        Busy(u64),
        /// Connection `id` is idle again at second `t`.
        Idle(u64, u64),
        Remove(u64),
    }
    use Step::*;

    fn accepted(id: u64, shed: Option<u64>) -> Admit {
        Admit::Accepted { id, shed }
    }

    fn check(cap: usize, steps: &[Step], expected_len: usize) {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut table = ConnTable::new(cap);
        for (i, step) in steps.iter().enumerate() {
            match *step {
                Arrive(t, want) => assert_eq!(table.admit(at(t)), want, "step {i}: {step:?}"),
                Busy(id) => table.busy(id),
                Idle(id, t) => table.idle(id, at(t)),
                Remove(id) => table.remove(id),
            }
        }
        assert_eq!(table.len(), expected_len, "{steps:?}");
    }

    #[test]
    fn admission() {
        // Below the cap everyone is kept.
        check(
            2,
            &[Arrive(0, accepted(0, None)), Arrive(1, accepted(1, None))],
            2,
        );
        // At the cap the oldest idle one goes.
        check(
            2,
            &[
                Arrive(0, accepted(0, None)),
                Arrive(1, accepted(1, None)),
                Arrive(2, accepted(2, Some(0))),
                Arrive(3, accepted(3, Some(1))),
            ],
            2,
        );
        // Idle the longest, not connected the longest: 0 asked again at 5.
        check(
            2,
            &[
                Arrive(0, accepted(0, None)),
                Arrive(1, accepted(1, None)),
                Busy(0),
                Idle(0, 5),
                Arrive(6, accepted(2, Some(1))),
            ],
            2,
        );
        // A busy connection is never shed; the idle one is.
        check(
            2,
            &[
                Arrive(0, accepted(0, None)),
                Arrive(1, accepted(1, None)),
                Busy(0),
                Arrive(2, accepted(2, Some(1))),
            ],
            2,
        );
        // All busy: the newcomer is refused, and nothing is lost.
        check(
            2,
            &[
                Arrive(0, accepted(0, None)),
                Arrive(1, accepted(1, None)),
                Busy(0),
                Busy(1),
                Arrive(2, Admit::Refused),
                Idle(1, 3),
                Arrive(4, accepted(2, Some(1))),
            ],
            2,
        );
        // A closed connection frees its place.
        check(
            1,
            &[
                Arrive(0, accepted(0, None)),
                Remove(0),
                Arrive(1, accepted(1, None)),
            ],
            1,
        );
        // Same idle moment: the oldest connection goes first.
        check(
            2,
            &[
                Arrive(0, accepted(0, None)),
                Arrive(0, accepted(1, None)),
                Arrive(0, accepted(2, Some(0))),
            ],
            2,
        );
        // Steps for connections already gone change nothing.
        check(
            1,
            &[
                Arrive(0, accepted(0, None)),
                Arrive(1, accepted(1, Some(0))),
                Busy(0),
                Idle(0, 2),
                Remove(0),
            ],
            1,
        );
    }
}
