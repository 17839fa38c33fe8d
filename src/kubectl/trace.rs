//! `podnet trace [TRACE_ID] [--last N] [-o json]`: the journey of one flow
//! or request through the cluster, hop by hop, as the control plane keeps
//! them in memory (`Api.Traces`).
//!
//! Only reads and renders; spans are recorded by the hops themselves
//! (`podnet_proto::trace::Recorder`).

use std::fmt::Write as _;
use std::path::Path;
use std::process::ExitCode;

use clap::Args;
use podnet_proto::trace::{format_trace_id, hop, parse_trace_id};
use podnet_proto::v1::{Journey, Span, TracesRequest};
use serde_json::{Value, json};

use podnet_lab::InputError;
use podnet_lab::api;

/// A journey is at most a few hundred spans of at most about 2 KiB; this
/// leaves room for the 100 journeys one request may return.
const MAX_RESPONSE: usize = 64 << 20;

#[derive(Debug, Args)]
pub struct TraceArgs {
    /// The trace id of a flow or request (16 hex digits); without it, the
    /// latest journeys.
    pub trace_id: Option<String>,
    /// How many of the latest journeys to show.
    #[arg(
        long,
        default_value_t = 5,
        conflicts_with = "trace_id",
        value_parser = clap::value_parser!(u32).range(1..=100)
    )]
    pub last: u32,
    /// json for machines.
    #[arg(short, long)]
    pub output: Option<String>,
}

pub async fn run(state: &Path, args: TraceArgs) -> anyhow::Result<ExitCode> {
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
    let trace_id = match &args.trace_id {
        None => 0,
        Some(text) => parse_trace_id(text).ok_or_else(|| {
            InputError(format!(
                "{text:?} is not a trace id: expected 1 to 16 hex digits (not all zero), as `podnet trace` prints them"
            ))
        })?,
    };
    let mut api = api::from_state(state)
        .await?
        .max_decoding_message_size(MAX_RESPONSE);
    let journeys = api
        .traces(TracesRequest {
            trace_id,
            limit: args.last,
        })
        .await
        .map_err(api::status_error)?
        .into_inner()
        .journeys;
    if trace_id != 0 {
        let Some(journey) = journeys.first() else {
            anyhow::bail!(
                "no journey with trace id {} (journeys are kept in memory for the last 4096 flows)",
                format_trace_id(trace_id)
            );
        };
        if json {
            println!("{}", serde_json::to_string_pretty(&to_json(journey))?);
        } else {
            print!("{}", render(journey));
        }
        return Ok(ExitCode::SUCCESS);
    }
    if json {
        let all: Vec<Value> = journeys.iter().map(to_json).collect();
        println!("{}", serde_json::to_string_pretty(&all)?);
    } else if journeys.is_empty() {
        eprintln!("No journeys recorded yet.");
    } else {
        let text: Vec<String> = journeys.iter().map(render).collect();
        print!("{}", text.join("\n"));
    }
    Ok(ExitCode::SUCCESS)
}

fn first_start(j: &Journey) -> i64 {
    j.spans
        .iter()
        .map(|s| s.start_unix_nanos)
        .min()
        .unwrap_or(0)
}

/// From the first span's start to the last span's end.
fn total_nanos(j: &Journey) -> i128 {
    let first = i128::from(first_start(j));
    j.spans
        .iter()
        .map(|s| i128::from(s.start_unix_nanos) + i128::from(s.duration_nanos) - first)
        .max()
        .unwrap_or(0)
}

/// Nanoseconds as milliseconds with `decimals` digits (truncated, so the
/// same journey always prints the same).
fn ms(nanos: i128, decimals: u32) -> String {
    let unit = 10i128.pow(6 - decimals);
    let scaled = nanos / unit;
    let frac = 10i128.pow(decimals);
    let sign = if scaled < 0 { "-" } else { "" };
    let scaled = scaled.abs();
    format!(
        "{sign}{}.{:0width$}",
        scaled / frac,
        scaled % frac,
        width = decimals as usize
    )
}

/// The line that says what the journey was: the ingress's decision and
/// status when there is an ingress hop, else the NetworkPolicy verdict
/// that dropped it, else the first hop's.
fn summary(j: &Journey) -> String {
    let Some(s) = j
        .spans
        .iter()
        .find(|s| s.hop == hop::INGRESS)
        .or_else(|| {
            j.spans
                .iter()
                .find(|s| s.hop == hop::POLICY && s.status == "dropped")
        })
        .or(j.spans.first())
    else {
        return "(no spans)".into();
    };
    match (s.decision.is_empty(), s.status.is_empty()) {
        (false, false) => format!("{} → {}", s.decision, s.status),
        (false, true) => s.decision.clone(),
        (true, _) => s.status.clone(),
    }
}

fn decision(s: &Span) -> String {
    if s.status.is_empty() || s.status == "ok" {
        s.decision.clone()
    } else {
        format!("{} [{}]", s.decision, s.status)
    }
}

/// One journey as a table, spans in the order they started.
pub fn render(j: &Journey) -> String {
    let mut out = String::new();
    let first = i128::from(first_start(j));
    let _ = writeln!(
        out,
        "trace {}  {}   total {} ms",
        format_trace_id(j.trace_id),
        summary(j),
        ms(total_nanos(j), 2)
    );
    let num_w = j.spans.len().to_string().len().max(1);
    let hop_w = j
        .spans
        .iter()
        .map(|s| s.hop.len())
        .max()
        .unwrap_or(0)
        .max(8);
    let where_w = j
        .spans
        .iter()
        .map(|s| s.process.len())
        .max()
        .unwrap_or(0)
        .max(6);
    let _ = writeln!(
        out,
        "  {:>num_w$}  {:<hop_w$}  {:<where_w$}  {:>8}  {:>8}  DECISION",
        "#", "HOP", "WHERE", "AT(ms)", "TOOK(ms)"
    );
    for (i, s) in j.spans.iter().enumerate() {
        let _ = writeln!(
            out,
            "  {:>num_w$}  {:<hop_w$}  {:<where_w$}  {:>8}  {:>8}  {}",
            i + 1,
            s.hop,
            s.process,
            ms(i128::from(s.start_unix_nanos) - first, 3),
            ms(i128::from(s.duration_nanos), 3),
            decision(s)
        );
    }
    out
}

fn to_json(j: &Journey) -> Value {
    let first = i128::from(first_start(j));
    let spans: Vec<Value> = j
        .spans
        .iter()
        .map(|s| {
            json!({
                "traceId": format_trace_id(s.trace_id),
                "parentTraceId": (s.parent_trace_id != 0).then(|| format_trace_id(s.parent_trace_id)),
                "hop": s.hop,
                "process": s.process,
                "decision": s.decision,
                "status": s.status,
                "startUnixNanos": s.start_unix_nanos,
                "offsetNanos": i64::try_from(i128::from(s.start_unix_nanos) - first).unwrap_or(i64::MAX),
                "durationNanos": s.duration_nanos,
            })
        })
        .collect();
    json!({
        "traceId": format_trace_id(j.trace_id),
        "summary": summary(j),
        "totalNanos": i64::try_from(total_nanos(j)).unwrap_or(i64::MAX),
        "spans": spans,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_700_000_000_000_000_000;

    fn span(
        trace_id: u64,
        hop: &str,
        process: &str,
        at_nanos: i64,
        took_nanos: u64,
        decision: &str,
        status: &str,
    ) -> Span {
        Span {
            trace_id,
            parent_trace_id: 0,
            hop: hop.into(),
            process: process.into(),
            decision: decision.into(),
            start_unix_nanos: T0 + at_nanos,
            duration_nanos: took_nanos,
            status: status.into(),
        }
    }

    fn journey() -> Journey {
        let conn = 0x1111_2222_3333_4444;
        let req = 0x3f2a_9c1b_0d4e_5f60;
        let mut ingress = span(
            req,
            "ingress",
            "node-2",
            120_500,
            1_500_000,
            "GET shop.example.com/api",
            "200",
        );
        ingress.parent_trace_id = conn;
        Journey {
            trace_id: req,
            spans: vec![
                span(
                    conn,
                    "edge",
                    "edge",
                    0,
                    1_795_400,
                    "127.0.1.1:80 → node-2 (172.18.0.3:31080), policy Cluster",
                    "ok",
                ),
                span(
                    conn,
                    "proxy",
                    "node-2",
                    41_000,
                    3_000,
                    "NodePort 31080 → endpoint 10.244.1.7:80 (SNAT 172.18.0.3)",
                    "ok",
                ),
                ingress,
                span(
                    req,
                    "proxy",
                    "node-2",
                    300_000,
                    2_000,
                    "default/web:80 → no ready endpoint",
                    "refused",
                ),
            ],
        }
    }

    #[test]
    fn renders_a_journey() {
        let expected = "\
trace 3f2a9c1b0d4e5f60  GET shop.example.com/api → 200   total 1.79 ms
  #  HOP       WHERE     AT(ms)  TOOK(ms)  DECISION
  1  edge      edge       0.000     1.795  127.0.1.1:80 → node-2 (172.18.0.3:31080), policy Cluster
  2  proxy     node-2     0.041     0.003  NodePort 31080 → endpoint 10.244.1.7:80 (SNAT 172.18.0.3)
  3  ingress   node-2     0.120     1.500  GET shop.example.com/api [200]
  4  proxy     node-2     0.300     0.002  default/web:80 → no ready endpoint [refused]
";
        assert_eq!(render(&journey()), expected);
    }

    #[test]
    fn header_falls_back_to_the_first_span() {
        let mut j = journey();
        j.spans.retain(|s| s.hop != "ingress");
        let text = render(&j);
        let header = text.lines().next().unwrap();
        assert_eq!(
            header,
            "trace 3f2a9c1b0d4e5f60  127.0.1.1:80 → node-2 (172.18.0.3:31080), policy Cluster → ok   total 1.79 ms"
        );
        // A flow NetworkPolicy dropped says so, whatever came first.
        let mut dropped = j.clone();
        dropped.spans.push(span(
            dropped.trace_id,
            "policy",
            "node-1",
            400_000,
            2_000,
            "10.244.0.4:37308 → 10.244.1.5:8080 ingress on node-1: isolated for ingress by x/deny-all, no rule allows",
            "dropped",
        ));
        assert!(
            render(&dropped).starts_with(
                "trace 3f2a9c1b0d4e5f60  10.244.0.4:37308 → 10.244.1.5:8080 ingress on node-1: isolated for ingress by x/deny-all, no rule allows → dropped"
            ),
            "{}",
            render(&dropped)
        );
        j.spans.clear();
        assert!(render(&j).starts_with("trace 3f2a9c1b0d4e5f60  (no spans)   total 0.00 ms\n"));
    }

    #[test]
    fn json_names_every_span_with_its_trace() {
        let v = to_json(&journey());
        assert_eq!(v["traceId"], "3f2a9c1b0d4e5f60");
        assert_eq!(v["totalNanos"], 1_795_400);
        assert_eq!(v["spans"][0]["traceId"], "1111222233334444");
        assert_eq!(v["spans"][0]["parentTraceId"], Value::Null);
        assert_eq!(v["spans"][2]["parentTraceId"], "1111222233334444");
        assert_eq!(v["spans"][2]["offsetNanos"], 120_500);
        assert_eq!(v["spans"][3]["status"], "refused");
    }

    #[test]
    fn milliseconds() {
        assert_eq!(ms(0, 3), "0.000");
        assert_eq!(ms(1_795_400, 3), "1.795");
        assert_eq!(ms(1_840_000, 2), "1.84");
        assert_eq!(ms(12_345_678_901, 3), "12345.678");
        assert_eq!(ms(-1_500_000, 3), "-1.500");
    }
}
