//! podnet-lab: everything that drives a podnet cluster from outside, shared
//! by the `podnet` binary, the end-to-end tests and the fuzzers.
//!
//! - `record`: the `cluster.json` record of a running cluster.
//! - `failure`: why a cluster stopped, and a role's last log lines.
//! - `atomic_file`: files written whole or not at all (rename).
//! - `api`: the control plane's API as a client uses it.
//! - `signal`: one shutdown token per process (SIGINT = SIGTERM).
//! - `flags`: flag values checked at parse time, and whether N nodes fit.
//! - `drain`: cordon and drain of a node, as kubectl does them.
//! - `launcher`: `up`, `down` and the supervisor of the role processes.
//! - `lbpool`: each cluster's exclusive LoadBalancer pool on the machine.
//! - `manifest`: Kubernetes YAML into objects, errors with file:line:column.
//! - `scenario`: scenario files: schema, expectations, the runner.
//! - `bench`: podnet measured against a reference in the same run.
//!
//! Deliberately not here: the roles themselves (controlplane, node, edge
//! crates) and the kubectl-like output (the binary).

pub mod api;
pub mod atomic_file;
pub mod bench;
pub mod drain;
pub mod failure;
pub mod flags;
pub mod launcher;
pub mod lbpool;
pub mod manifest;
pub mod matrix;
pub mod raw_grpc;
pub mod record;
pub mod scenario;
pub mod signal;

pub use manifest::InputError;
