//! Scenario files: one YAML file describes one experiment (nodes, links,
//! manifests, traffic, faults, expectations). `podnet run FILE` boots a
//! cluster for it, applies the manifests, waits until everything is Ready,
//! checks the static expectations, runs the traffic and the fault timeline
//! and judges the windowed expectations, tears the cluster down and exits
//! with the verdict.
//!
//! Parsing (`parse`) is separate from reading (`load`) and from running,
//! so `--check` validates a file without starting anything; unknown fields
//! are errors.

pub mod compare;
pub mod expect;
pub mod experiment;
pub mod faults;
pub mod host;
pub mod html;
pub mod junit;
pub mod plan;
pub mod progress;
pub mod refs;
pub mod run;
pub mod schema;
pub mod scrape;
pub mod traffic;
