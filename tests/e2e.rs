//! End-to-end tests: the real `podnet` binary, a cluster of processes on
//! loopback per test.

#[path = "e2e/auth.rs"]
mod auth;
#[path = "e2e/bad_input.rs"]
mod bad_input;
#[path = "e2e/bounded.rs"]
mod bounded;
#[path = "e2e/dns.rs"]
mod dns;
#[path = "e2e/dnsforward.rs"]
mod dnsforward;
#[path = "e2e/dnspolicy.rs"]
mod dnspolicy;
#[path = "e2e/dualstack.rs"]
mod dualstack;
#[path = "e2e/edge.rs"]
mod edge;
#[path = "e2e/events.rs"]
mod events;
#[path = "e2e/experiments.rs"]
mod experiments;
#[path = "e2e/flows.rs"]
mod flows;
#[path = "e2e/guards.rs"]
mod guards;
#[path = "e2e/harness.rs"]
mod harness;
#[path = "e2e/healing.rs"]
mod healing;
#[path = "e2e/ingress.rs"]
mod ingress;
#[path = "e2e/lifecycle.rs"]
mod lifecycle;
#[path = "e2e/links.rs"]
mod links;
#[path = "e2e/metrics.rs"]
mod metrics;
#[path = "e2e/mirroring.rs"]
mod mirroring;
#[path = "e2e/netpol.rs"]
mod netpol;
#[path = "e2e/outside.rs"]
mod outside;
#[path = "e2e/pods.rs"]
mod pods;
#[path = "e2e/policy.rs"]
mod policy;
#[path = "e2e/readme.rs"]
mod readme;
#[path = "e2e/rollout.rs"]
mod rollout;
#[path = "e2e/scenarios.rs"]
mod scenarios;
#[path = "e2e/sctp.rs"]
mod sctp;
#[path = "e2e/services.rs"]
mod services;
#[path = "e2e/stalls.rs"]
mod stalls;
#[path = "e2e/store.rs"]
mod store;
#[path = "e2e/termination.rs"]
mod termination;
#[path = "e2e/toolbox.rs"]
mod toolbox;
