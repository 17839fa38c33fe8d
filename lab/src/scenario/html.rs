//! `report.html`: one self-contained file made from `report.json` (inline
//! SVG charts drawn with plotters; no script, no stylesheet or font from
//! anywhere). The verdict table comes first, each verdict linking to the
//! flow it judged; then per flow, on one time axis, the fault lane, the
//! intended and achieved rate, latency percentiles, errors by class, the
//! share of each serving pod and the generator's lag, every chart with a
//! band per fault.

use std::fmt::Write as _;

use plotters::prelude::*;
use serde_json::Value;

const WIDTH: u32 = 960;
const HEIGHT: u32 = 180;
/// Colours for series, in order.
const PALETTE: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];
const BAND: RGBColor = RGBColor(255, 205, 210);

/// `&`, `<`, `>`, `"` and `'` escaped, for text and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A fault's band on the time axis: id, start, end.
struct Band {
    id: String,
    start: f64,
    end: f64,
}

fn bands(report: &Value, length: f64) -> Vec<Band> {
    report["events"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| {
            let start = e["applied"].as_f64()?;
            let end = e["healed"]
                .as_f64()
                .or_else(|| e["heal_scheduled"].as_f64().map(|_| length))
                .or_else(|| {
                    matches!(e["kind"].as_str(), Some("partition" | "link")).then_some(length)
                })
                .unwrap_or(start);
            Some(Band {
                id: e["id"].as_str().unwrap_or("").to_string(),
                start,
                end: end.max(start + 0.05),
            })
        })
        .collect()
}

/// One chart: `lines` of (name, points), drawn over `length` seconds
/// with the fault bands behind them; `stacked` draws the series as
/// stacked areas instead.
fn chart(
    title: &str,
    unit: &str,
    length: f64,
    bands: &[Band],
    lines: &[(String, Vec<(f64, f64)>)],
    stacked: bool,
) -> String {
    let mut svg = String::new();
    let top = lines
        .iter()
        .flat_map(|(_, pts)| pts.iter().map(|p| p.1))
        .filter(|v| v.is_finite())
        .fold(0.0f64, f64::max);
    let top = if stacked {
        let mut sums = std::collections::BTreeMap::<i64, f64>::new();
        for (_, pts) in lines {
            for (x, y) in pts {
                *sums.entry((*x * 1000.0) as i64).or_default() += y;
            }
        }
        sums.values().copied().fold(0.0, f64::max)
    } else {
        top
    };
    let top = if top <= 0.0 { 1.0 } else { top * 1.1 };
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        let drawn: Result<(), Box<dyn std::error::Error>> = (|| {
            root.fill(&WHITE)?;
            let mut c = ChartBuilder::on(&root)
                .caption(format!("{title} ({unit})"), ("sans-serif", 14))
                .margin(6)
                .x_label_area_size(22)
                .y_label_area_size(56)
                .build_cartesian_2d(0f64..length.max(1.0), 0f64..top)?;
            c.configure_mesh().light_line_style(WHITE.mix(0.0)).draw()?;
            for b in bands {
                c.draw_series(std::iter::once(Rectangle::new(
                    [(b.start, 0.0), (b.end, top)],
                    BAND.mix(0.6).filled(),
                )))?;
            }
            let mut base: std::collections::BTreeMap<i64, f64> = Default::default();
            for (i, (name, pts)) in lines.iter().enumerate() {
                let color = PALETTE[i % PALETTE.len()];
                if stacked {
                    let upper: Vec<(f64, f64)> = pts
                        .iter()
                        .map(|&(x, y)| {
                            let b = base.entry((x * 1000.0) as i64).or_default();
                            *b += y;
                            (x, *b)
                        })
                        .collect();
                    c.draw_series(AreaSeries::new(upper, 0.0, color.mix(0.5)).border_style(color))?
                        .label(name.as_str())
                        .legend(move |(x, y)| {
                            Rectangle::new([(x, y - 4), (x + 10, y + 4)], color.filled())
                        });
                } else {
                    c.draw_series(LineSeries::new(
                        pts.iter().copied().filter(|p| p.1.is_finite()),
                        color.stroke_width(2),
                    ))?
                    .label(name.as_str())
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 12, y)], color.stroke_width(2))
                    });
                }
            }
            if !lines.is_empty() {
                c.configure_series_labels()
                    .background_style(WHITE.mix(0.8))
                    .border_style(BLACK.mix(0.3))
                    .position(SeriesLabelPosition::UpperRight)
                    .draw()?;
            }
            root.present()?;
            Ok(())
        })();
        if let Err(e) = drawn {
            return format!(
                "<p>chart {} could not be drawn: {}</p>",
                escape(title),
                escape(&e.to_string())
            );
        }
    }
    svg
}

/// The fault lane: each fault a labelled band.
fn lane(length: f64, bands: &[Band]) -> String {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, 60)).into_drawing_area();
        let drawn: Result<(), Box<dyn std::error::Error>> = (|| {
            root.fill(&WHITE)?;
            let mut c = ChartBuilder::on(&root)
                .margin(6)
                .x_label_area_size(18)
                .y_label_area_size(56)
                .build_cartesian_2d(0f64..length.max(1.0), 0f64..1f64)?;
            c.configure_mesh()
                .disable_y_mesh()
                .disable_x_mesh()
                .disable_y_axis()
                .draw()?;
            for b in bands {
                c.draw_series(std::iter::once(Rectangle::new(
                    [(b.start, 0.1), (b.end, 0.9)],
                    RGBColor(229, 57, 53).mix(0.7).filled(),
                )))?;
                c.draw_series(std::iter::once(Text::new(
                    b.id.clone(),
                    (b.start, 0.95),
                    ("sans-serif", 12).into_font().color(&BLACK),
                )))?;
            }
            root.present()?;
            Ok(())
        })();
        if let Err(e) = drawn {
            return format!(
                "<p>the fault lane could not be drawn: {}</p>",
                escape(&e.to_string())
            );
        }
    }
    svg
}

fn series(seconds: &[Value], f: impl Fn(&Value) -> Option<f64>) -> Vec<(f64, f64)> {
    seconds
        .iter()
        .filter_map(|s| Some((s["t"].as_f64()? + 0.5, f(s)?)))
        .collect()
}

/// The page for `report` (the JSON `report.json` holds).
pub fn render(report: &Value) -> String {
    let name = report["scenario"]["name"].as_str().unwrap_or("");
    let result = report["result"].as_str().unwrap_or("");
    let mut html = String::new();
    let _ = write!(
        html,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>podnet report: {}</title>\n<style>body{{font-family:sans-serif;margin:2em;max-width:1000px}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}}.PASS{{color:#1b5e20}}.FAIL,.INVALID,.ABORTED{{color:#b71c1c}}.WARN{{color:#e65100}}section{{margin-top:2em}}</style></head><body>\n",
        escape(name)
    );
    let _ = write!(
        html,
        "<h1>{} <span class=\"{r}\">{r}</span></h1>\n<p>scenario hash {}, seed {}, podnet {}, report version {}</p>\n",
        escape(name),
        escape(report["scenario"]["hash"].as_str().unwrap_or("")),
        report["seed"],
        escape(report["podnet"].as_str().unwrap_or("")),
        report["version"],
        r = escape(result)
    );
    if let Some(invalid) = report["invalid"].as_array().filter(|a| !a.is_empty()) {
        html.push_str("<h2 class=\"INVALID\">Not a valid run</h2><ul>");
        for why in invalid {
            let _ = write!(html, "<li>{}</li>", escape(why.as_str().unwrap_or("")));
        }
        html.push_str("</ul>\n");
    }
    html.push_str("<h2>Verdicts</h2>\n<table><tr><th>expectation</th><th>verdict</th><th>window</th><th>why</th></tr>\n");
    for v in report["verdicts"].as_array().into_iter().flatten() {
        let status = v["status"].as_str().unwrap_or("");
        let window = match (v["window"]["start"].as_f64(), v["window"]["end"].as_f64()) {
            (Some(a), Some(b)) => format!("{a:.1}s - {b:.1}s"),
            _ => "-".into(),
        };
        let _ = writeln!(
            html,
            "<tr><td><a href=\"#flow-{}\">{}</a></td><td class=\"{s}\">{s}</td><td>{}</td><td>{}</td></tr>",
            escape(v["traffic"].as_str().unwrap_or("")),
            escape(v["name"].as_str().unwrap_or("")),
            escape(&window),
            escape(v["detail"].as_str().unwrap_or("")),
            s = escape(status)
        );
    }
    html.push_str("</table>\n<h2>Faults</h2>\n<table><tr><th>id</th><th>kind</th><th>scheduled</th><th>applied</th><th>healed</th><th>targets</th></tr>\n");
    let at = |v: &Value| v.as_f64().map_or("-".to_string(), |t| format!("{t:.2}s"));
    for e in report["events"].as_array().into_iter().flatten() {
        let targets: Vec<&str> = e["targets"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let _ = writeln!(
            html,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(e["id"].as_str().unwrap_or("")),
            escape(e["kind"].as_str().unwrap_or("")),
            at(&e["scheduled"]),
            at(&e["applied"]),
            at(&e["healed"]),
            escape(&targets.join(", ")),
        );
    }
    html.push_str("</table>\n");
    for flow in report["flows"].as_array().into_iter().flatten() {
        let seconds: Vec<Value> = flow["seconds"].as_array().cloned().unwrap_or_default();
        let length = seconds.len() as f64;
        let bands = bands(report, length);
        let fname = flow["name"].as_str().unwrap_or("");
        let _ = writeln!(
            html,
            "<section id=\"flow-{id}\"><h2>Flow {n}</h2><p>{}</p>",
            escape(flow["request"].as_str().unwrap_or("")),
            id = escape(fname),
            n = escape(fname)
        );
        html.push_str(&lane(length, &bands));
        let total = |s: &Value| -> f64 {
            s["outcomes"]
                .as_object()
                .map_or(0.0, |o| o.values().filter_map(Value::as_f64).sum())
        };
        let shed = |s: &Value| s["outcomes"]["shed"].as_f64().unwrap_or(0.0);
        let achieved = (
            "achieved".to_string(),
            series(&seconds, |s| Some(total(s) - shed(s))),
        );
        // A closed loop intends no rate: only what it achieved is drawn.
        let rates = if flow["closed_loop"].is_object() {
            vec![achieved]
        } else {
            let intended = series(&seconds, |s| s["intended"].as_f64());
            vec![("intended".to_string(), intended), achieved]
        };
        html.push_str(&chart("rate", "requests/s", length, &bands, &rates, false));
        let ms = |key: &'static str| move |s: &Value| s[key].as_f64().map(|v| v * 1e3);
        html.push_str(&chart(
            "latency from the scheduled time",
            "ms",
            length,
            &bands,
            &[
                ("p50".into(), series(&seconds, ms("p50"))),
                ("p90".into(), series(&seconds, ms("p90"))),
                ("p99".into(), series(&seconds, ms("p99"))),
                ("max".into(), series(&seconds, ms("max"))),
            ],
            false,
        ));
        let mut classes: Vec<String> = seconds
            .iter()
            .flat_map(|s| {
                s["outcomes"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(k, _)| k.clone())
            })
            .filter(|k| k != "ok")
            .collect();
        classes.sort();
        classes.dedup();
        let errors: Vec<(String, Vec<(f64, f64)>)> = classes
            .iter()
            .map(|c| {
                (
                    c.clone(),
                    series(&seconds, |s| {
                        Some(s["outcomes"][c.as_str()].as_f64().unwrap_or(0.0))
                    }),
                )
            })
            .collect();
        html.push_str(&chart(
            "errors by class",
            "requests/s",
            length,
            &bands,
            &errors,
            true,
        ));
        let mut pods: Vec<String> = seconds
            .iter()
            .flat_map(|s| {
                s["by_pod"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(k, _)| k.clone())
            })
            .collect();
        pods.sort();
        pods.dedup();
        let shares: Vec<(String, Vec<(f64, f64)>)> = pods
            .iter()
            .map(|p| {
                (
                    p.clone(),
                    series(&seconds, |s| {
                        Some(s["by_pod"][p.as_str()]["requests"].as_f64().unwrap_or(0.0))
                    }),
                )
            })
            .collect();
        html.push_str(&chart(
            "requests per serving pod",
            "requests/s",
            length,
            &bands,
            &shares,
            true,
        ));
        html.push_str(&chart(
            "generator lag p99",
            "ms",
            length,
            &bands,
            &[("lag p99".into(), series(&seconds, ms("lag_p99")))],
            false,
        ));
        html.push_str("</section>\n");
    }
    html.push_str("</body></html>\n");
    html
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn names_are_escaped() {
        assert_eq!(
            escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }

    #[test]
    fn a_report_becomes_one_page_with_every_chart() {
        let second = |t: u64, ok: u64, timeout: u64| {
            json!({"t": t, "intended": 10.0, "outcomes": {"ok": ok, "timeout": timeout},
                   "p50": 0.01, "p90": 0.02, "p99": 0.03, "max": 0.05, "lag_p99": 0.0001,
                   "by_pod": {"default/web-1": {"requests": ok}}})
        };
        let report = json!({
            "version": 1, "podnet": "0.1.0", "seed": 7, "result": "FAIL",
            "scenario": {"name": "<x>", "hash": "00ff"},
            "invalid": [],
            "events": [{"id": "cut", "kind": "partition", "scheduled": 2.0, "applied": 2.1, "heal_scheduled": 4.1, "healed": 4.1, "targets": ["a->b"]}],
            "flows": [{"name": "users", "request": "GET http://web/", "seconds": [second(0, 10, 0), second(1, 10, 0), second(2, 5, 5), second(3, 5, 5), second(4, 10, 0)]}],
            "verdicts": [{"name": "tail", "traffic": "users", "status": "FAIL", "detail": "p99 = 30ms", "window": {"start": 2.1, "end": 4.1}}],
        });
        let html = render(&report);
        assert!(html.starts_with("<!DOCTYPE html>"));
        assert!(html.contains("&lt;x&gt;"), "the scenario's name is escaped");
        assert!(!html.contains("<x>"));
        // The lane and five charts.
        assert_eq!(html.matches("<svg").count(), 6, "{html}");
        assert!(!html.contains("could not be drawn"), "{html}");
        // Self-contained: no script, nothing loaded from anywhere.
        assert!(!html.contains("<script"));
        assert!(!html.contains("src="));
        assert!(!html.contains("href=\"http"));
        assert!(!html.contains("<link"));
        assert!(html.contains("timeout"));
        assert!(html.contains("default/web-1"));
        assert!(html.contains("class=\"FAIL\""));
        // Each verdict links to the flow it judged.
        assert!(html.contains("<a href=\"#flow-users\">tail</a>"));
        assert!(html.contains("<section id=\"flow-users\">"));
        // plotters writes a legend's text on a line of its own.
        let legend = |name: &str| format!(">\n{name}\n</text>");
        assert!(
            html.contains(&legend("intended")),
            "an open loop draws its rate"
        );

        // A closed loop has no intended rate to draw.
        let mut closed = report.clone();
        closed["flows"][0]["closed_loop"] = json!({"concurrency": 4, "think": 0.0});
        let html = render(&closed);
        assert!(!html.contains(&legend("intended")), "{html}");
        assert!(html.contains(&legend("achieved")), "{html}");
    }
}
