//! The kubelet's grace period accounting for a pod being deleted, pure:
//! how long the pod gets ([`grace_period`], pod_workers'
//! `calculateEffectiveGracePeriod`) and how long a container's process
//! gets after its preStop hook ([`kill_window`], kuberuntime's
//! `killContainer`).
//!
//! Deliberately not here: running the hooks and signalling the containers
//! (`crate::runtime`), and finishing the deletion (`crate::agent`).

use std::time::Duration;

use serde_json::Value;

/// A pod without `terminationGracePeriodSeconds` gets the API's default.
pub const DEFAULT_GRACE_PERIOD: Duration = Duration::from_secs(30);
/// The kubelet always supplies a grace period of at least a second.
pub const MIN_GRACE_PERIOD: Duration = Duration::from_secs(1);
/// After a preStop hook the process always gets this long to stop, even
/// when the hook used the whole grace period (kubelet's
/// `minimumGracePeriodInSeconds`), "to avoid unnecessary SIGKILLs".
pub const MIN_KILL_WINDOW: Duration = Duration::from_secs(2);

/// The grace period of a deleted pod: `metadata.deletionGracePeriodSeconds`
/// (what the delete asked, set by the API), else
/// `spec.terminationGracePeriodSeconds`, else 30 s; at least 1 s.
pub fn grace_period(pod: &Value) -> Duration {
    let seconds = |pointer: &str| {
        pod.pointer(pointer)
            .and_then(Value::as_i64)
            .filter(|s| *s > 0)
    };
    seconds("/metadata/deletionGracePeriodSeconds")
        .or_else(|| seconds("/spec/terminationGracePeriodSeconds"))
        .map_or(DEFAULT_GRACE_PERIOD, |s| {
            Duration::from_secs(u64::try_from(s).unwrap_or(u64::MAX))
        })
        .max(MIN_GRACE_PERIOD)
}

/// How long a container's process has between its termination signal and
/// being killed: the grace period less what its preStop hook took, but
/// never under [`MIN_KILL_WINDOW`].
pub fn kill_window(grace: Duration, hook: Duration) -> Duration {
    grace.saturating_sub(hook).max(MIN_KILL_WINDOW)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn grace_period_sources() {
        let check = |pod: Value, expected: u64| {
            assert_eq!(grace_period(&pod), Duration::from_secs(expected), "{pod}");
        };
        check(json!({}), 30);
        check(json!({"spec": {"terminationGracePeriodSeconds": 7}}), 7);
        check(
            json!({"metadata": {"deletionGracePeriodSeconds": 3}, "spec": {"terminationGracePeriodSeconds": 7}}),
            3,
        );
        // A zero (force) or negative period still gets the kubelet's second.
        check(json!({"spec": {"terminationGracePeriodSeconds": 0}}), 30);
        check(json!({"metadata": {"deletionGracePeriodSeconds": 0}}), 30);
        check(json!({"metadata": {"deletionGracePeriodSeconds": -4}}), 30);
        check(json!({"metadata": {"deletionGracePeriodSeconds": "5"}}), 30);
        check(json!({"metadata": {"deletionGracePeriodSeconds": 1}}), 1);
    }

    #[test]
    fn kill_window_after_the_hook() {
        let check = |grace: u64, hook_ms: u64, expected_ms: u64| {
            assert_eq!(
                kill_window(Duration::from_secs(grace), Duration::from_millis(hook_ms)),
                Duration::from_millis(expected_ms),
                "grace {grace}s, hook {hook_ms}ms"
            );
        };
        // No hook: the whole grace period.
        check(30, 0, 30_000);
        // The hook's time counts against the grace period.
        check(30, 5_000, 25_000);
        check(10, 7_500, 2_500);
        // A hook that used (nearly) all of it leaves the 2 s minimum.
        check(10, 9_000, 2_000);
        check(10, 10_000, 2_000);
        check(10, 60_000, 2_000);
        // A grace period under the minimum still gets it.
        check(1, 0, 2_000);
    }
}
