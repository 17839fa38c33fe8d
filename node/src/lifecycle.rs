//! The kubelet's container lifecycle rules, pure: whether an exited
//! container is restarted (`restartPolicy`, kubelet's
//! `ShouldContainerBeRestarted`), how long a crashing container waits
//! before its next start (the kubelet's crash-loop back-off, client-go's
//! `flowcontrol.Backoff` as the kubelet sets it up), and the pod phase its
//! container states add up to (kubelet's `getPhase`), and the transition
//! times of the pod's conditions (the status manager's
//! `updateLastTransitionTime`).
//!
//! Deliberately not here: running, signalling or timing anything (the
//! runtime does, and hands in `now`).

use std::time::Duration;

use tokio::time::Instant;

/// The first crash-loop back-off (kubelet's `backOffPeriod`).
pub const INITIAL_BACKOFF: Duration = Duration::from_secs(10);
/// The longest one (kubelet's `MaxContainerBackOff`).
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// `spec.restartPolicy` (the API defaults it to Always).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartPolicy {
    Always,
    OnFailure,
    Never,
}

impl RestartPolicy {
    /// The policy a pod spec names; anything else is Always (the API
    /// validated and defaulted it).
    pub fn of(policy: &str) -> RestartPolicy {
        match policy {
            "OnFailure" => RestartPolicy::OnFailure,
            "Never" => RestartPolicy::Never,
            _ => RestartPolicy::Always,
        }
    }

    /// Whether a container that exited with `exit_code` is started again.
    pub fn restarts(self, exit_code: i32) -> bool {
        match self {
            RestartPolicy::Always => true,
            RestartPolicy::OnFailure => exit_code != 0,
            RestartPolicy::Never => false,
        }
    }
}

/// One container's crash-loop back-off. Each exit is looked at with the
/// time it finished: within the current back-off of it, the container
/// waits (`CrashLoopBackOff`); after it, the back-off doubles (up to
/// [`MAX_BACKOFF`]) and the container starts. The first exit starts it
/// again at once. A container that ran for more than twice the longest
/// back-off (10 min) since its last start starts over at
/// [`INITIAL_BACKOFF`]. The kubelet's jitter is 0.
#[derive(Debug, Clone, Default)]
pub struct CrashBackoff {
    /// The current back-off and when it was last moved on.
    entry: Option<(Duration, Instant)>,
}

impl CrashBackoff {
    fn expired(finished: Instant, last_update: Instant) -> bool {
        finished.saturating_duration_since(last_update) > MAX_BACKOFF * 2
    }

    /// For a container that exited at `finished`: `Some((back-off, what is
    /// left of it))` while it must still wait at `now`, `None` when it may
    /// start (then call [`CrashBackoff::next`]). Kubelet's
    /// `IsInBackOffSince`.
    pub fn waiting(&self, finished: Instant, now: Instant) -> Option<(Duration, Duration)> {
        let (backoff, last_update) = self.entry?;
        if Self::expired(finished, last_update) {
            return None;
        }
        let since = now.saturating_duration_since(finished);
        (since < backoff).then(|| (backoff, backoff - since))
    }

    /// The container starts again at `now` after an exit at `finished`:
    /// the back-off moves on (or starts over). Kubelet's `Next`.
    pub fn next(&mut self, finished: Instant, now: Instant) {
        let backoff = match self.entry {
            Some((backoff, last_update)) if !Self::expired(finished, last_update) => {
                (backoff * 2).min(MAX_BACKOFF)
            }
            _ => INITIAL_BACKOFF,
        };
        self.entry = Some((backoff, now));
    }
}

/// A duration as Go's `time.Duration.String` prints whole seconds, which
/// is how the kubelet's back-off message words it: `10s`, `1m20s`, `5m0s`.
pub fn go_duration(d: Duration) -> String {
    let secs = d.as_secs();
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, _) => format!("{m}m{s}s"),
        _ => format!("{h}h{m}m{s}s"),
    }
}

/// What the phase rule needs of one container's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContainerPhase {
    /// Not started yet (no last termination).
    Waiting,
    Running,
    /// Waiting to start again after it exited (back-off).
    Restarting,
    /// Terminated with this exit code and not to be started again.
    Terminated(i32),
}

/// The pod phase as the kubelet's `getPhase` computes it from its
/// containers. (A pod the kubelet evicts is Failed from the moment it
/// decides so, whatever its containers do: the eviction sets the phase.)
pub fn pod_phase(policy: RestartPolicy, containers: &[ContainerPhase]) -> &'static str {
    let (mut waiting, mut running, mut stopped, mut succeeded) = (0, 0, 0, 0);
    for c in containers {
        match c {
            ContainerPhase::Waiting => waiting += 1,
            ContainerPhase::Running => running += 1,
            ContainerPhase::Restarting => stopped += 1,
            ContainerPhase::Terminated(code) => {
                stopped += 1;
                if *code == 0 {
                    succeeded += 1;
                }
            }
        }
    }
    if waiting > 0 {
        return "Pending";
    }
    if running > 0 {
        return "Running";
    }
    if stopped == 0 {
        return "Pending";
    }
    if policy == RestartPolicy::Always {
        // Every container is on its way to start again.
        return "Running";
    }
    if stopped == succeeded {
        return "Succeeded";
    }
    if policy == RestartPolicy::Never {
        return "Failed";
    }
    // OnFailure: a failed one starts again.
    "Running"
}

/// The status manager's `updateLastTransitionTime`: each condition of
/// `next` keeps the `lastTransitionTime` it had in `previous` when its
/// status is the same, and gets `now` when it is new or changed. What
/// `minReadySeconds` and `kubectl get pods` read the Ready time from.
pub fn stamp_transitions(
    previous: Option<&serde_json::Value>,
    next: &mut serde_json::Value,
    now: &str,
) {
    use serde_json::Value;
    let text = |c: &Value, f: &str| c.get(f).and_then(Value::as_str).unwrap_or("").to_string();
    let old: Vec<Value> = previous
        .and_then(|p| p.get("conditions"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let Some(conditions) = next.get_mut("conditions").and_then(Value::as_array_mut) else {
        return;
    };
    for c in conditions {
        let ty = text(c, "type");
        let kept = old
            .iter()
            .find(|o| text(o, "type") == ty && text(o, "status") == text(c, "status"))
            .and_then(|o| o.get("lastTransitionTime"))
            .filter(|t| t.is_string())
            .cloned();
        c["lastTransitionTime"] = kept.unwrap_or_else(|| Value::String(now.to_string()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transition_times_move_only_when_a_condition_changes() {
        use serde_json::json;
        let mut first = json!({"conditions": [{"type": "Ready", "status": "False"}]});
        stamp_transitions(None, &mut first, "t1");
        assert_eq!(first["conditions"][0]["lastTransitionTime"], "t1");
        let mut same = json!({"conditions": [{"type": "Ready", "status": "False", "reason": "x"},
            {"type": "PodScheduled", "status": "True"}]});
        stamp_transitions(Some(&first), &mut same, "t2");
        assert_eq!(same["conditions"][0]["lastTransitionTime"], "t1");
        assert_eq!(same["conditions"][1]["lastTransitionTime"], "t2");
        let mut ready = json!({"conditions": [{"type": "Ready", "status": "True"}]});
        stamp_transitions(Some(&same), &mut ready, "t3");
        assert_eq!(ready["conditions"][0]["lastTransitionTime"], "t3");
        let mut none = json!({"phase": "Pending"});
        stamp_transitions(Some(&ready), &mut none, "t4");
        assert_eq!(none, json!({"phase": "Pending"}));
    }

    #[test]
    fn restart_policy_as_the_kubelet() {
        let check = |policy: &str, code: i32, expected: bool| {
            assert_eq!(
                RestartPolicy::of(policy).restarts(code),
                expected,
                "{policy} {code}"
            );
        };
        check("Always", 0, true);
        check("Always", 3, true);
        check("", 0, true);
        check("OnFailure", 0, false);
        check("OnFailure", 1, true);
        check("OnFailure", 137, true);
        check("Never", 0, false);
        check("Never", 1, false);
    }

    /// Crashes of a container that dies as soon as it starts: the first
    /// restart is at once, then 10 s, 20 s, 40 s, ... up to 5 min.
    #[test]
    fn crash_loop_backoff_doubles_from_10s_to_a_5m_cap() {
        let mut b = CrashBackoff::default();
        let mut now = Instant::now();
        let mut waits = Vec::new();
        for _ in 0..8 {
            let finished = now;
            let wait = b
                .waiting(finished, now)
                .map_or(Duration::ZERO, |(_, left)| left);
            waits.push(wait.as_secs());
            now += wait;
            assert_eq!(b.waiting(finished, now), None, "may start after the wait");
            b.next(finished, now);
        }
        assert_eq!(waits, [0, 10, 20, 40, 80, 160, 300, 300]);
    }

    #[test]
    fn back_off_counts_from_the_exit_and_says_what_is_left() {
        let mut b = CrashBackoff::default();
        let t0 = Instant::now();
        b.next(t0, t0);
        let finished = t0 + Duration::from_secs(3);
        assert_eq!(
            b.waiting(finished, finished + Duration::from_secs(4)),
            Some((Duration::from_secs(10), Duration::from_secs(6)))
        );
        assert_eq!(
            b.waiting(finished, finished + Duration::from_secs(10)),
            None
        );
    }

    /// A container that ran for over 10 minutes since its last start
    /// without a problem starts over at 10 s.
    #[test]
    fn back_off_resets_after_10_minutes_of_running() {
        let mut b = CrashBackoff::default();
        let mut now = Instant::now();
        for _ in 0..5 {
            b.next(now, now);
            now += Duration::from_secs(1);
        }
        // Ran exactly 10 min: still the long back-off.
        let finished = now + Duration::from_secs(600) - Duration::from_secs(1);
        assert!(
            b.waiting(finished, finished)
                .is_some_and(|(d, _)| d > INITIAL_BACKOFF)
        );
        // Ran longer: none at all, and the next one is 10 s again.
        let finished = now + Duration::from_secs(601);
        assert_eq!(b.waiting(finished, finished), None);
        b.next(finished, finished);
        let again = finished + Duration::from_secs(1);
        assert_eq!(
            b.waiting(again, again),
            Some((INITIAL_BACKOFF, INITIAL_BACKOFF))
        );
    }

    #[test]
    fn durations_as_go_prints_them() {
        let check = |secs: u64, expected: &str| {
            assert_eq!(go_duration(Duration::from_secs(secs)), expected);
        };
        check(10, "10s");
        check(80, "1m20s");
        check(160, "2m40s");
        check(300, "5m0s");
        check(3600, "1h0m0s");
    }

    #[test]
    fn pod_phase_as_the_kubelet_computes_it() {
        use ContainerPhase::*;
        use RestartPolicy::*;
        let check = |policy, containers: &[ContainerPhase], expected: &str| {
            assert_eq!(
                pod_phase(policy, containers),
                expected,
                "{policy:?} {containers:?}"
            );
        };
        check(Always, &[Waiting], "Pending");
        check(Always, &[Running, Waiting], "Pending");
        check(Always, &[Running], "Running");
        // Running while any container runs, whatever the others did.
        check(Never, &[Running, Terminated(1)], "Running");
        // Always: a crashed container is restarting, the pod Running.
        check(Always, &[Restarting], "Running");
        check(OnFailure, &[Restarting], "Running");
        check(OnFailure, &[Terminated(0)], "Succeeded");
        check(OnFailure, &[Terminated(0), Restarting], "Running");
        check(Never, &[Terminated(0), Terminated(0)], "Succeeded");
        check(Never, &[Terminated(0), Terminated(3)], "Failed");
    }
}
