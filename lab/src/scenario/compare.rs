//! `podnet compare A.json B.json`: two runs of the same scenario side by
//! side, aligned on scenario time and on the faults' actual times: each
//! expectation's observed value, and per flow the whole run, every fault's
//! window and the time after it, with the change from A to B. Reports of
//! different scenarios (their hashes differ) are refused.

use std::fmt::Write as _;
use std::path::Path;

use serde_json::Value;

use crate::manifest::InputError;

/// One window of one flow, rebuilt from the report's per-second counts
/// and histograms.
#[derive(Debug, Clone, PartialEq)]
pub struct Figures {
    pub requests: u64,
    pub error_rate: f64,
    /// Seconds.
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
}

/// The figures of `flow`'s seconds `from..to`.
pub fn figures(flow: &Value, from: u64, to: u64) -> Figures {
    let mut h = podnet_experiment::series::histogram();
    let (mut requests, mut errors) = (0u64, 0u64);
    for s in flow["seconds"].as_array().into_iter().flatten() {
        let t = s["t"].as_u64().unwrap_or(u64::MAX);
        if !(from..to).contains(&t) {
            continue;
        }
        for (class, n) in s["outcomes"].as_object().into_iter().flatten() {
            let n = n.as_u64().unwrap_or(0);
            requests += n;
            if class != "ok" {
                errors += n;
            }
        }
        for pair in s["latency_us"].as_array().into_iter().flatten() {
            if let (Some(v), Some(n)) = (pair[0].as_u64(), pair[1].as_u64()) {
                let _ = h.record_n(v.clamp(1, podnet_experiment::series::MAX_MICROS), n);
            }
        }
    }
    let q = |q: f64| {
        if h.is_empty() {
            f64::NAN
        } else {
            h.value_at_quantile(q) as f64 / 1e6
        }
    };
    Figures {
        requests,
        error_rate: if requests == 0 {
            f64::NAN
        } else {
            errors as f64 / requests as f64
        },
        p50: q(0.5),
        p99: q(0.99),
        max: if h.is_empty() {
            f64::NAN
        } else {
            h.max() as f64 / 1e6
        },
    }
}

/// Seconds `from..to` of a flow.
type Seconds = (u64, u64);

/// The windows compared for a flow: the whole run after the warmup, and
/// for each fault of A (matched in B by id) its span and what follows it.
fn windows(
    a: &Value,
    b: &Value,
    flow_a: &Value,
    flow_b: &Value,
) -> Vec<(String, Seconds, Seconds)> {
    let len = |f: &Value| f["seconds"].as_array().map_or(0, Vec::len) as u64;
    let warm = |f: &Value| f["warmup"].as_f64().unwrap_or(0.0).ceil() as u64;
    let mut out = vec![(
        "whole".to_string(),
        (warm(flow_a), len(flow_a)),
        (warm(flow_b), len(flow_b)),
    )];
    let span = |r: &Value, id: &str, end: u64| -> Option<(f64, f64)> {
        let e = r["events"].as_array()?.iter().find(|e| e["id"] == id)?;
        let start = e["applied"].as_f64()?;
        let stop = e["healed"].as_f64().unwrap_or(start);
        Some((start, stop.min(end as f64)))
    };
    for e in a["events"].as_array().into_iter().flatten() {
        let id = e["id"].as_str().unwrap_or("");
        let (Some(sa), Some(sb)) = (span(a, id, len(flow_a)), span(b, id, len(flow_b))) else {
            continue;
        };
        let inside =
            |(s, e): (f64, f64)| (s.ceil() as u64, (e.floor() as u64).max(s.ceil() as u64));
        if sa.1 > sa.0 {
            out.push((format!("during {id}"), inside(sa), inside(sb)));
        }
        out.push((
            format!("after {id}"),
            (sa.1.ceil() as u64, len(flow_a)),
            (sb.1.ceil() as u64, len(flow_b)),
        ));
    }
    out
}

fn ms(v: f64) -> String {
    if v.is_nan() {
        "-".into()
    } else {
        format!("{:.1}ms", v * 1e3)
    }
}

fn pct(v: f64) -> String {
    if v.is_nan() {
        "-".into()
    } else {
        format!("{:.2}%", v * 100.0)
    }
}

fn delta_ms(a: f64, b: f64) -> String {
    if a.is_nan() || b.is_nan() {
        "-".into()
    } else {
        format!("{:+.1}ms", (b - a) * 1e3)
    }
}

fn delta_pp(a: f64, b: f64) -> String {
    if a.is_nan() || b.is_nan() {
        "-".into()
    } else {
        format!("{:+.2}pp", (b - a) * 100.0)
    }
}

/// The comparison of two reports as text, or why they cannot be compared.
pub fn compare(a: &Value, b: &Value) -> Result<String, String> {
    let hash = |r: &Value| r["scenario"]["hash"].as_str().map(str::to_string);
    match (hash(a), hash(b)) {
        (Some(x), Some(y)) if x == y => {}
        (Some(x), Some(y)) => {
            return Err(format!(
                "the reports are of different scenarios (hash {x} and {y}): only runs of the same scenario file compare"
            ));
        }
        _ => return Err("not a podnet report (no scenario hash)".into()),
    }
    for r in [a, b] {
        if r["version"].as_u64() != Some(u64::from(super::experiment::REPORT_VERSION)) {
            return Err(format!(
                "report version {} is not {}, the one this podnet reads",
                r["version"],
                super::experiment::REPORT_VERSION
            ));
        }
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}: A seed {} {}, B seed {} {}",
        a["scenario"]["name"].as_str().unwrap_or(""),
        a["seed"],
        a["result"].as_str().unwrap_or(""),
        b["seed"],
        b["result"].as_str().unwrap_or("")
    );
    out.push_str("\n| expectation | A | B |\n|---|---|---|\n");
    for va in a["verdicts"].as_array().into_iter().flatten() {
        let name = va["name"].as_str().unwrap_or("");
        let vb = b["verdicts"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|v| v["name"] == name);
        let show = |v: &Value| {
            format!(
                "{} {}",
                v["status"].as_str().unwrap_or(""),
                v["detail"].as_str().unwrap_or("")
            )
        };
        let _ = writeln!(
            out,
            "| {name} | {} | {} |",
            show(va),
            vb.map_or("(not in B)".to_string(), show)
        );
    }
    out.push_str("\n| flow | window | requests A / B | error rate A / B | Δ | p50 A / B | p99 A / B | Δ p99 | max A / B |\n|---|---|---|---|---|---|---|---|---|\n");
    for fa in a["flows"].as_array().into_iter().flatten() {
        let name = fa["name"].as_str().unwrap_or("");
        let Some(fb) = b["flows"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|f| f["name"] == name)
        else {
            let _ = writeln!(out, "| {name} | (not in B) | | | | | | | |");
            continue;
        };
        for (window, wa, wb) in windows(a, b, fa, fb) {
            let x = figures(fa, wa.0, wa.1);
            let y = figures(fb, wb.0, wb.1);
            let _ = writeln!(
                out,
                "| {name} | {window} | {} / {} | {} / {} | {} | {} / {} | {} / {} | {} | {} / {} |",
                x.requests,
                y.requests,
                pct(x.error_rate),
                pct(y.error_rate),
                delta_pp(x.error_rate, y.error_rate),
                ms(x.p50),
                ms(y.p50),
                ms(x.p99),
                ms(y.p99),
                delta_ms(x.p99, y.p99),
                ms(x.max),
                ms(y.max),
            );
        }
    }
    Ok(out)
}

fn read(path: &Path) -> anyhow::Result<Value> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| InputError(format!("cannot read {}: {e}", path.display())))?;
    serde_json::from_str(&text)
        .map_err(|e| InputError(format!("{}: not a report: {e}", path.display())).into())
}

/// `podnet compare A B`.
pub fn run(a: &Path, b: &Path) -> anyhow::Result<()> {
    let (x, y) = (read(a)?, read(b)?);
    let text = compare(&x, &y)
        .map_err(|e| InputError(format!("{} and {}: {e}", a.display(), b.display())))?;
    print!("{text}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn report(hash: &str, errors_during: u64) -> Value {
        let second = |t: u64, ok: u64, timeout: u64, us: u64| json!({"t": t, "outcomes": {"ok": ok, "timeout": timeout}, "latency_us": [[us, ok]]});
        json!({
            "version": 1, "seed": 1, "result": "PASS",
            "scenario": {"name": "x", "hash": hash},
            "events": [{"id": "cut", "applied": 2.2, "healed": 4.2}],
            "verdicts": [{"name": "v", "status": "PASS", "detail": "ok"}],
            "flows": [{"name": "users", "warmup": 1.0, "seconds": [
                second(0, 10, 0, 1000), second(1, 10, 0, 1000), second(2, 10, 0, 1000),
                second(3, 10 - errors_during, errors_during, 5000), second(4, 10, 0, 1000), second(5, 10, 0, 2000),
            ]}],
        })
    }

    #[test]
    fn windows_are_aligned_on_each_runs_own_fault_times() {
        let a = report("h", 2);
        let mut b = report("h", 5);
        b["events"][0]["applied"] = json!(1.5);
        b["events"][0]["healed"] = json!(3.5);
        let w = windows(&a, &b, &a["flows"][0], &b["flows"][0]);
        assert_eq!(w[0], ("whole".into(), (1, 6), (1, 6)));
        assert_eq!(w[1], ("during cut".into(), (3, 4), (2, 3)));
        assert_eq!(w[2], ("after cut".into(), (5, 6), (4, 6)));
        let text = compare(&a, &report("h", 5)).unwrap();
        assert!(
            text.contains("| users | during cut | 10 / 10 | 20.00% / 50.00% | +30.00pp |"),
            "{text}"
        );
        assert!(text.contains("| v | PASS ok | PASS ok |"), "{text}");
    }

    #[test]
    fn figures_rebuild_the_percentiles() {
        let f = figures(&report("h", 0)["flows"][0], 0, 6);
        assert_eq!(f.requests, 60);
        assert_eq!(f.error_rate, 0.0);
        // Within the histograms' 1 %.
        assert!((f.p50 - 0.001).abs() < 1e-5, "{}", f.p50);
        assert!((f.max - 0.005).abs() < 5e-5, "{}", f.max);
        assert!(figures(&report("h", 0)["flows"][0], 10, 12).p99.is_nan());
    }

    #[test]
    fn different_scenarios_do_not_compare() {
        let e = compare(&report("h1", 0), &report("h2", 0)).unwrap_err();
        assert!(e.contains("different scenarios"), "{e}");
        assert!(
            compare(&json!({}), &report("h", 0))
                .unwrap_err()
                .contains("not a podnet report")
        );
        let mut old = report("h", 0);
        old["version"] = json!(0);
        assert!(
            compare(&old, &report("h", 0))
                .unwrap_err()
                .contains("version")
        );
    }
}
