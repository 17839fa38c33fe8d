//! The experiment layer's pure core (no I/O, no clock, no tokio): what a
//! runner needs to turn a scenario's `traffic`, `faults` and `expect` into
//! verdicts. See `../shared/EXPERIMENTS.md` for the design; this crate's
//! modules are its definitions:
//!
//! - [`units`]: every number carries its unit.
//! - [`schedule`]: open-loop request schedules, seeded.
//! - [`series`]: what became of each request, kept as one HdrHistogram
//!   per flow per second (latency from the scheduled time, and the
//!   generator's lag), counts per error class and per serving pod.
//! - [`window`]: windows anchored on the actual times of events, resolved
//!   to whole seconds.
//! - [`verdict`]: metrics over windows, conditions with literal or
//!   before-relative limits, `min_samples`, and verdicts that show the
//!   observed value, the limit, the margin and the window.
//!
//! The runner (`lab`) generates the traffic, applies the faults, records
//! their actual times into a [`window::Timeline`] and every finished
//! request into its flow's [`series::FlowSeries`], then judges each
//! [`verdict::Check`].

pub mod schedule;
pub mod series;
pub mod units;
pub mod verdict;
pub mod window;
