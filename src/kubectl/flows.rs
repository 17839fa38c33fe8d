//! `podnet flows [-n NS] [--pod P] [--verdict dropped|forwarded] [--last N]
//! [--follow] [-o json]`: the flows NetworkPolicy judged, as Hubble's
//! `observe` shows them: when, which node, source → destination, protocol,
//! the verdict and why (the policies that allowed it, or the ones that
//! isolate the pod it was dropped for). Each node keeps its own bounded
//! log; the control plane gathers them on demand (`Api.Flows`).

use std::collections::HashSet;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, ValueEnum};
use podnet_proto::v1::{FlowRecord, FlowsRequest, PolicyCounters};
use serde_json::json;

use podnet_lab::InputError;
use podnet_lab::api;

/// How often `--follow` asks again.
const FOLLOW_EVERY: Duration = Duration::from_millis(500);

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum VerdictFilter {
    Dropped,
    Forwarded,
}

#[derive(Debug, Args)]
pub struct FlowsArgs {
    /// Only flows from or to pods of this namespace.
    #[arg(short, long)]
    pub namespace: Option<String>,
    /// Only flows from or to this pod (NAME, or NAMESPACE/NAME).
    #[arg(long)]
    pub pod: Option<String>,
    /// Only dropped or only forwarded flows.
    #[arg(long, value_enum)]
    pub verdict: Option<VerdictFilter>,
    /// The newest this many flows (after the filters).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub last: u32,
    /// Keep printing new flows until interrupted.
    #[arg(short, long)]
    pub follow: bool,
    /// Instead of flows, each node's counts of every flow it judged since
    /// it started: forwarded, dropped for egress, dropped for ingress.
    #[arg(long, conflicts_with_all = ["follow", "pod", "namespace", "verdict"])]
    pub counts: bool,
    /// json for machines (one object per line with --follow).
    #[arg(short, long)]
    pub output: Option<String>,
}

/// What a flow must match to be shown.
struct Filter {
    namespace: Option<String>,
    pod: Option<String>,
    verdict: Option<VerdictFilter>,
}

impl Filter {
    fn of(args: &FlowsArgs) -> Filter {
        // `--pod NAME` is in `-n`'s namespace, else default, as kubectl.
        let pod = args.pod.as_ref().map(|p| {
            if p.contains('/') {
                p.clone()
            } else {
                format!("{}/{p}", args.namespace.as_deref().unwrap_or("default"))
            }
        });
        Filter {
            namespace: args.namespace.clone(),
            pod,
            verdict: args.verdict,
        }
    }

    fn matches(&self, f: &FlowRecord) -> bool {
        let ends = [f.src_pod.as_str(), f.dst_pod.as_str()];
        let in_namespace = |ns: &str| {
            ends.iter()
                .any(|p| p.split_once('/').is_some_and(|(n, _)| n == ns))
        };
        self.namespace.as_deref().is_none_or(in_namespace)
            && self.pod.as_deref().is_none_or(|pod| ends.contains(&pod))
            && match self.verdict {
                None => true,
                Some(VerdictFilter::Dropped) => !f.allowed,
                Some(VerdictFilter::Forwarded) => f.allowed,
            }
    }
}

pub async fn run(state: &Path, args: FlowsArgs) -> anyhow::Result<ExitCode> {
    let json = match args.output.as_deref() {
        None => false,
        Some("json") => true,
        Some(other) => {
            return Err(InputError(format!(
                "unable to match a printer suitable for the output format {other:?}, allowed formats are: json"
            ))
            .into());
        }
    };
    let filter = Filter::of(&args);
    let mut api = api::from_state(state).await?;
    let mut seen: HashSet<(i64, String, String, String, String)> = HashSet::new();
    let mut first = true;
    loop {
        let answer = api
            .flows(FlowsRequest { last: 0 })
            .await
            .map_err(api::status_error)?
            .into_inner();
        if args.counts {
            if json {
                let rows: Vec<serde_json::Value> = answer
                    .counters
                    .iter()
                    .map(|c| {
                        json!({
                            "node": c.node, "forwarded": c.forwarded,
                            "droppedEgress": c.dropped_egress, "droppedIngress": c.dropped_ingress,
                        })
                    })
                    .collect();
                println!(
                    "{}",
                    serde_json::to_string_pretty(&json!({"counters": rows}))?
                );
            } else {
                print!("{}", counts_table(&answer.counters));
            }
            return Ok(ExitCode::SUCCESS);
        }
        let flows = answer.flows;
        let mut shown: Vec<&FlowRecord> = flows
            .iter()
            .filter(|f| filter.matches(f))
            .filter(|f| !seen.contains(&identity(f)))
            .collect();
        if first {
            let skip = shown.len().saturating_sub(args.last as usize);
            shown.drain(..skip);
        }
        let rows: Vec<String> = shown
            .iter()
            .map(|f| if json { json_line(f) } else { line(f) })
            .collect();
        if json && !args.follow {
            let items: Vec<serde_json::Value> = shown.iter().map(|f| to_json(f)).collect();
            println!(
                "{}",
                serde_json::to_string_pretty(&json!({"flows": items}))?
            );
        } else {
            for row in rows {
                println!("{row}");
            }
        }
        if !args.follow {
            return Ok(ExitCode::SUCCESS);
        }
        // Everything listed, shown or filtered out, is old from now on.
        seen = flows.iter().map(identity).collect();
        first = false;
        tokio::time::sleep(FOLLOW_EVERY).await;
    }
}

/// One row per node, as kubectl lays out a table.
fn counts_table(counters: &[PolicyCounters]) -> String {
    let header = ["NODE", "FORWARDED", "DROPPED-EGRESS", "DROPPED-INGRESS"];
    let rows: Vec<[String; 4]> = counters
        .iter()
        .map(|c| {
            [
                c.node.clone(),
                c.forwarded.to_string(),
                c.dropped_egress.to_string(),
                c.dropped_ingress.to_string(),
            ]
        })
        .collect();
    let width = |i: usize| {
        rows.iter()
            .map(|r| r[i].len())
            .chain([header[i].len()])
            .max()
            .unwrap_or(0)
    };
    let widths: Vec<usize> = (0..4).map(width).collect();
    let line = |cells: [&str; 4]| {
        let mut out = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i == 3 {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<w$}   ", w = widths[i]));
            }
        }
        out.push('\n');
        out
    };
    let mut out = line(header);
    for r in &rows {
        out.push_str(&line([&r[0], &r[1], &r[2], &r[3]]));
    }
    out
}

/// What tells two records apart (a node logs each judged flow once).
fn identity(f: &FlowRecord) -> (i64, String, String, String, String) {
    (
        f.time_unix_nanos,
        f.node.clone(),
        f.direction.clone(),
        f.src.clone(),
        f.dst.clone(),
    )
}

/// `10:04:12.345 node-2 default/client (10.244.0.4:40001) -> default/web
/// (10.244.1.5:8080) TCP ingress DROPPED: isolated for ingress by
/// default/deny-all, no rule allows`.
fn line(f: &FlowRecord) -> String {
    let end = |pod: &str, addr: &str| {
        if pod.is_empty() {
            addr.to_string()
        } else {
            format!("{pod} ({addr})")
        }
    };
    format!(
        "{} {} {} -> {} {} {} {}: {}",
        clock(f.time_unix_nanos),
        f.node,
        end(&f.src_pod, &f.src),
        end(&f.dst_pod, &f.dst),
        f.protocol,
        f.direction,
        if f.allowed { "FORWARDED" } else { "DROPPED" },
        f.reason
    )
}

/// The time of day, UTC, to the millisecond.
fn clock(unix_nanos: i64) -> String {
    let millis = unix_nanos.div_euclid(1_000_000);
    let day_ms = millis.rem_euclid(86_400_000);
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        day_ms / 3_600_000,
        day_ms / 60_000 % 60,
        day_ms / 1000 % 60,
        day_ms % 1000
    )
}

fn to_json(f: &FlowRecord) -> serde_json::Value {
    json!({
        "time": f.time_unix_nanos,
        "node": f.node,
        "direction": f.direction,
        "protocol": f.protocol,
        "source": {"address": f.src, "pod": f.src_pod},
        "destination": {"address": f.dst, "pod": f.dst_pod},
        "verdict": if f.allowed { "FORWARDED" } else { "DROPPED" },
        "reason": f.reason,
        "policies": f.policies,
    })
}

fn json_line(f: &FlowRecord) -> String {
    to_json(f).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(src_pod: &str, dst_pod: &str, allowed: bool) -> FlowRecord {
        FlowRecord {
            time_unix_nanos: 36_252_345_000_000,
            node: "node-2".into(),
            direction: "ingress".into(),
            protocol: "TCP".into(),
            src: "10.244.0.4:40001".into(),
            dst: "10.244.1.5:8080".into(),
            src_pod: src_pod.into(),
            dst_pod: dst_pod.into(),
            allowed,
            reason: "isolated for ingress by default/deny-all, no rule allows".into(),
            policies: vec!["default/deny-all".into()],
        }
    }

    #[test]
    fn a_flow_reads_as_hubble_observe_prints_it() {
        assert_eq!(
            line(&record("default/client", "default/web", false)),
            "10:04:12.345 node-2 default/client (10.244.0.4:40001) -> default/web (10.244.1.5:8080) TCP ingress DROPPED: isolated for ingress by default/deny-all, no rule allows"
        );
        assert_eq!(
            line(&record("", "default/web", true)),
            "10:04:12.345 node-2 10.244.0.4:40001 -> default/web (10.244.1.5:8080) TCP ingress FORWARDED: isolated for ingress by default/deny-all, no rule allows"
        );
    }

    #[test]
    fn counts_are_a_table_per_node() {
        let c = |node: &str, f, e, i| PolicyCounters {
            node: node.into(),
            forwarded: f,
            dropped_egress: e,
            dropped_ingress: i,
        };
        assert_eq!(
            counts_table(&[c("node-1", 120, 0, 7), c("node-2", 3, 1, 0)]),
            "NODE     FORWARDED   DROPPED-EGRESS   DROPPED-INGRESS\n\
             node-1   120         0                7\n\
             node-2   3           1                0\n"
        );
    }

    #[test]
    fn filters_pick_namespace_pod_and_verdict() {
        let args = |ns: Option<&str>, pod: Option<&str>, verdict| FlowsArgs {
            namespace: ns.map(String::from),
            pod: pod.map(String::from),
            verdict,
            last: 20,
            follow: false,
            counts: false,
            output: None,
        };
        let dropped = record("default/client", "shop/web", false);
        let check =
            |a: FlowsArgs, want: bool| assert_eq!(Filter::of(&a).matches(&dropped), want, "{a:?}");
        check(args(None, None, None), true);
        check(args(Some("shop"), None, None), true);
        check(args(Some("kube-system"), None, None), false);
        check(args(None, Some("client"), None), true);
        check(args(Some("shop"), Some("web"), None), true);
        check(args(None, Some("web"), None), false);
        check(args(None, None, Some(VerdictFilter::Dropped)), true);
        check(args(None, None, Some(VerdictFilter::Forwarded)), false);
    }
}
