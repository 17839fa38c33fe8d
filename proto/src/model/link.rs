//! Link emulation settings: podnet's own `Link` kind (apiVersion
//! `podnet.io/v1alpha1`), one object per directed node pair, named
//! `FROM.TO`. The sending node applies it to the underlay datagrams it sends
//! to the receiving node.

use std::time::Duration;

use serde::{Deserialize, Serialize};

pub const LINK_API_VERSION: &str = "podnet.io/v1alpha1";

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("invalid link setting spec.{field}: {reason}")]
pub struct InvalidLink {
    pub field: &'static str,
    pub reason: String,
}

/// The `spec` of a Link, as written (`delay: 20ms`, `loss: 1%`, `rate: 10Mbit`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LinkSpec {
    pub from: String,
    pub to: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jitter: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub partition: bool,
    /// What a partition does to the packets it stops: `Drop` (the
    /// default: silence, the sender times out) or `Reject` (as an
    /// iptables REJECT: the sender's connect is refused). Only with
    /// `partition: true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition_mode: Option<PartitionMode>,
    /// Share of datagrams sent twice (`1%`), as netem's `duplicate`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duplicate: Option<String>,
    /// Share of datagrams sent at once while the others wait the delay
    /// (`25%`), as netem's `reorder`; needs `delay`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reorder: Option<String>,
}

/// What a partitioned link does with what it stops.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum PartitionMode {
    /// Silently: the sender hears nothing and times out.
    #[default]
    Drop,
    /// Refused where the link starts, as an iptables REJECT with
    /// icmp-port-unreachable: a TCP or SCTP connect fails with
    /// ECONNREFUSED, a UDP socket gets port unreachable, and flows already
    /// on the link are reset.
    Reject,
}

impl PartitionMode {
    pub fn as_str(self) -> &'static str {
        match self {
            PartitionMode::Drop => "Drop",
            PartitionMode::Reject => "Reject",
        }
    }
}

impl std::fmt::Display for PartitionMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A Link's settings, parsed.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LinkParams {
    pub delay: Duration,
    pub jitter: Duration,
    /// Probability in [0, 1] that a datagram is dropped.
    pub loss: f64,
    /// Bits per second; `None` is unlimited.
    pub rate_bps: Option<u64>,
    pub partition: bool,
    /// What the partition does; `Drop` whenever `partition` is false.
    pub partition_mode: PartitionMode,
    /// Probability in [0, 1] that a datagram is sent twice.
    pub duplicate: f64,
    /// Probability in [0, 1] that a datagram skips the delay (never
    /// above 0 without a delay).
    pub reorder: f64,
}

impl LinkParams {
    /// True when the link leaves datagrams alone.
    pub fn is_clear(&self) -> bool {
        *self == LinkParams::default()
    }

    /// A partition that refuses rather than drops.
    pub fn rejects(&self) -> bool {
        self.partition && self.partition_mode == PartitionMode::Reject
    }
}

impl LinkSpec {
    pub fn name(&self) -> String {
        format!("{}.{}", self.from, self.to)
    }

    /// Whether both ends are among `nodes` (the cluster's node names): a
    /// Link between nodes that do not exist would do nothing, silently.
    pub fn check_nodes(&self, nodes: &[&str]) -> Result<(), InvalidLink> {
        for (field, name) in [("from", &self.from), ("to", &self.to)] {
            if !nodes.contains(&name.as_str()) {
                let known = if nodes.is_empty() {
                    "the cluster has no nodes".to_string()
                } else {
                    format!("the cluster's nodes are {}", nodes.join(", "))
                };
                return Err(InvalidLink {
                    field,
                    reason: format!("node {name:?} not found: {known}"),
                });
            }
        }
        Ok(())
    }

    pub fn params(&self) -> Result<LinkParams, InvalidLink> {
        let duration = |field: &'static str, v: &Option<String>| -> Result<Duration, InvalidLink> {
            match v {
                None => Ok(Duration::ZERO),
                Some(s) => parse_duration(s).map_err(|reason| InvalidLink { field, reason }),
            }
        };
        let percent = |field: &'static str, v: &Option<String>| -> Result<f64, InvalidLink> {
            match v {
                None => Ok(0.0),
                Some(s) => parse_percent(s).map_err(|reason| InvalidLink { field, reason }),
            }
        };
        let loss = percent("loss", &self.loss)?;
        let duplicate = percent("duplicate", &self.duplicate)?;
        let reorder = percent("reorder", &self.reorder)?;
        let rate_bps = match &self.rate {
            None => None,
            Some(s) => Some(parse_rate(s).map_err(|reason| InvalidLink {
                field: "rate",
                reason,
            })?),
        };
        if self.from.is_empty() {
            return Err(InvalidLink {
                field: "from",
                reason: "required".into(),
            });
        }
        if self.to.is_empty() {
            return Err(InvalidLink {
                field: "to",
                reason: "required".into(),
            });
        }
        let delay = duration("delay", &self.delay)?;
        if reorder > 0.0 && delay.is_zero() {
            // tc refuses it the same way: with no delay nothing waits, so
            // nothing can overtake.
            return Err(InvalidLink {
                field: "reorder",
                reason: "reordering not possible without specifying some delay: set spec.delay"
                    .into(),
            });
        }
        if self.partition_mode.is_some() && !self.partition {
            return Err(InvalidLink {
                field: "partitionMode",
                reason: "only with spec.partition: true".into(),
            });
        }
        Ok(LinkParams {
            delay,
            jitter: duration("jitter", &self.jitter)?,
            loss,
            rate_bps,
            partition: self.partition,
            partition_mode: if self.partition {
                self.partition_mode.unwrap_or_default()
            } else {
                PartitionMode::Drop
            },
            duplicate,
            reorder,
        })
    }
}

/// The longest duration taken (a link's delay or jitter, a scenario's
/// timeout), in seconds.
const MAX_DELAY_SECS: f64 = 3600.0;

/// "20ms", "1.5ms", "2s", "250us", at most an hour.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let idx = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(idx);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration like 20ms"))?;
    let secs = match unit.trim() {
        "ns" => n / 1e9,
        "us" | "µs" => n / 1e6,
        "ms" => n / 1e3,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        "" => return Err(format!("{s:?} has no unit: use ns, us, ms, s, m or h")),
        other => {
            return Err(format!(
                "{s:?} has an unknown unit {other:?}: use ns, us, ms, s, m or h"
            ));
        }
    };
    if !secs.is_finite() || secs > MAX_DELAY_SECS {
        return Err(format!("{s:?} is too large: at most 1h"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// "1%", "0.1%", or a fraction "0.01"; result in [0, 1].
pub fn parse_percent(s: &str) -> Result<f64, String> {
    let t = s.trim();
    let v = match t.strip_suffix('%') {
        Some(p) => p.trim().parse::<f64>().map(|v| v / 100.0),
        None => t.parse::<f64>(),
    }
    .map_err(|_| format!("{s:?} is not a percentage like 1%"))?;
    if (0.0..=1.0).contains(&v) {
        Ok(v)
    } else {
        Err(format!("{s:?} is outside 0%..100%"))
    }
}

/// "10Mbit", "1Gbit", "500kbit", "100bit" (also "bps" spellings).
pub fn parse_rate(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let idx = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(idx);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a rate like 10Mbit"))?;
    let m = match unit.trim().to_ascii_lowercase().as_str() {
        "bit" | "bps" => 1.0,
        "kbit" | "kbps" => 1e3,
        "mbit" | "mbps" => 1e6,
        "gbit" | "gbps" => 1e9,
        _ => return Err(format!("{s:?}: unit must be bit, kbit, Mbit or Gbit")),
    };
    let bps = n * m;
    if !(1000.0..=1e12).contains(&bps) {
        return Err(format!("{s:?} is out of range (1kbit..1000Gbit)"));
    }
    Ok(bps as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_settings() {
        let spec = LinkSpec {
            from: "a".into(),
            to: "b".into(),
            delay: Some("20ms".into()),
            jitter: Some("1.5ms".into()),
            loss: Some("1%".into()),
            rate: Some("10Mbit".into()),
            duplicate: Some("1%".into()),
            reorder: Some("25%".into()),
            ..Default::default()
        };
        let p = spec.params().unwrap();
        assert!((p.duplicate - 0.01).abs() < 1e-12);
        assert!((p.reorder - 0.25).abs() < 1e-12);
        assert_eq!(p.partition_mode, PartitionMode::Drop);
        assert_eq!(p.delay, Duration::from_millis(20));
        assert_eq!(p.jitter, Duration::from_micros(1500));
        assert!((p.loss - 0.01).abs() < 1e-12);
        assert_eq!(p.rate_bps, Some(10_000_000));
        assert!(LinkParams::default().is_clear());
    }

    #[test]
    fn both_ends_must_be_nodes_of_the_cluster() {
        let link = |from: &str, to: &str| LinkSpec {
            from: from.into(),
            to: to.into(),
            ..Default::default()
        };
        let nodes = ["node-1", "node-2"];
        assert_eq!(link("node-1", "node-2").check_nodes(&nodes), Ok(()));
        let err = link("node-1", "nosuch").check_nodes(&nodes).unwrap_err();
        assert_eq!(err.field, "to");
        assert!(
            err.to_string()
                .contains("node \"nosuch\" not found: the cluster's nodes are node-1, node-2"),
            "{err}"
        );
        assert_eq!(
            link("x", "node-1").check_nodes(&nodes).unwrap_err().field,
            "from"
        );
        assert!(
            link("a", "b")
                .check_nodes(&[])
                .unwrap_err()
                .reason
                .contains("no nodes")
        );
    }

    #[test]
    fn durations_say_why_they_are_refused() {
        for (s, want) in [
            ("20ms", Ok(Duration::from_millis(20))),
            ("2h", Err("too large: at most 1h")),
            ("1h", Ok(Duration::from_secs(3600))),
            ("99999h", Err("\"99999h\" is too large: at most 1h")),
            ("20", Err("has no unit")),
            ("20x", Err("unknown unit \"x\"")),
            ("fast", Err("not a duration")),
        ] {
            match (parse_duration(s), want) {
                (Ok(got), Ok(want)) => assert_eq!(got, want, "{s}"),
                (Err(got), Err(want)) => assert!(got.contains(want), "{s}: {got}"),
                (got, want) => panic!("{s}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn errors_name_the_field() {
        let spec = LinkSpec {
            from: "a".into(),
            to: "b".into(),
            loss: Some("150%".into()),
            ..Default::default()
        };
        let err = spec.params().unwrap_err();
        assert_eq!(err.field, "loss");
        let spec = LinkSpec {
            from: "a".into(),
            to: "b".into(),
            delay: Some("20".into()),
            ..Default::default()
        };
        assert!(
            spec.params()
                .unwrap_err()
                .to_string()
                .contains("spec.delay")
        );
    }

    #[test]
    fn reorder_needs_a_delay_and_a_mode_needs_a_partition() {
        let base = LinkSpec {
            from: "a".into(),
            to: "b".into(),
            ..Default::default()
        };
        let err = LinkSpec {
            reorder: Some("25%".into()),
            ..base.clone()
        }
        .params()
        .unwrap_err();
        assert_eq!(err.field, "reorder");
        assert!(
            err.reason.contains("without specifying some delay"),
            "{err}"
        );
        let with_delay = LinkSpec {
            reorder: Some("25%".into()),
            delay: Some("10ms".into()),
            ..base.clone()
        };
        assert!((with_delay.params().unwrap().reorder - 0.25).abs() < 1e-12);
        for (field, spec) in [
            (
                "duplicate",
                LinkSpec {
                    duplicate: Some("101%".into()),
                    ..base.clone()
                },
            ),
            (
                "partitionMode",
                LinkSpec {
                    partition_mode: Some(PartitionMode::Reject),
                    ..base.clone()
                },
            ),
        ] {
            assert_eq!(spec.params().unwrap_err().field, field);
        }
        let reject = LinkSpec {
            partition: true,
            partition_mode: Some(PartitionMode::Reject),
            ..base.clone()
        };
        assert!(reject.params().unwrap().rejects());
        let drop = LinkSpec {
            partition: true,
            ..base
        };
        assert!(!drop.params().unwrap().rejects());
        // The mode is written as Kubernetes writes enums.
        let json = serde_json::to_value(&reject).unwrap();
        assert_eq!(json["partitionMode"], "Reject");
        let back: LinkSpec = serde_json::from_value(json).unwrap();
        assert_eq!(back, reject);
        assert!(
            serde_json::from_value::<LinkSpec>(
                serde_json::json!({"from": "a", "to": "b", "partitionMode": "reject"})
            )
            .is_err()
        );
    }
}
