//! Checking a scenario's expectations against a running cluster: from
//! pods, through `exec` of the toolbox (nc, dig, curl), and waiting until
//! everything is Ready.

use std::collections::BTreeMap;
use std::time::Duration;

use podnet_proto::model::LabelSelector;
use serde_json::Value;

use super::schema::{DnsExpect, HttpExpect, MatrixExpect, Reachability, is_selector};
use crate::api::{self, Api};
use crate::manifest::InputError;

pub(super) async fn list(api: &mut Api, kind: &str) -> anyhow::Result<Vec<Value>> {
    api::list_objects(api, kind, "").await
}

fn ready(p: &Value) -> bool {
    podnet_proto::model::condition_is_true(p, "Ready")
}

/// Waits until every Deployment is available and every pod is Ready.
pub(super) async fn wait_ready(api: &mut Api, timeout: Duration) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let deployments = list(api, "Deployment").await?;
        let pods = list(api, "Pod").await?;
        let waiting_deploy: Vec<String> = deployments
            .iter()
            .filter(|d| {
                d.pointer("/status/availableReplicas")
                    .and_then(Value::as_i64)
                    .unwrap_or(0)
                    < d.pointer("/spec/replicas")
                        .and_then(Value::as_i64)
                        .unwrap_or(1)
            })
            .map(|d| {
                format!(
                    "deployment/{}",
                    d["metadata"]["name"].as_str().unwrap_or("")
                )
            })
            .collect();
        let waiting_pods: Vec<String> = pods
            .iter()
            .filter(|p| !ready(p))
            .map(|p| {
                format!(
                    "pod/{} ({})",
                    p["metadata"]["name"].as_str().unwrap_or(""),
                    podnet_proto::model::view::PodView(p).status()
                )
            })
            .collect();
        if waiting_deploy.is_empty() && waiting_pods.is_empty() {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            anyhow::bail!(
                "not Ready after {timeout:?}: {}",
                [waiting_deploy, waiting_pods].concat().join(", ")
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Pods named by a scenario reference: `name`, `ns/name`, `sel`, `ns/sel`.
pub(super) async fn resolve_pods(api: &mut Api, reference: &str) -> anyhow::Result<Vec<Value>> {
    let (ns, rest) = match reference.split_once('/') {
        Some((ns, rest)) => (ns.to_string(), rest.to_string()),
        None => ("default".to_string(), reference.to_string()),
    };
    let pods = list(api, "Pod").await?;
    let in_ns = pods
        .into_iter()
        .filter(|p| p["metadata"]["namespace"] == ns.as_str());
    let found: Vec<Value> = if is_selector(&rest) {
        let sel = LabelSelector::parse(&rest).map_err(|e| InputError(e.to_string()))?;
        in_ns
            .filter(|p| {
                let labels: BTreeMap<String, String> = p["metadata"]["labels"]
                    .as_object()
                    .map(|m| {
                        m.iter()
                            .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                            .collect()
                    })
                    .unwrap_or_default();
                sel.matches(&labels)
            })
            .collect()
    } else {
        in_ns
            .filter(|p| p["metadata"]["name"] == rest.as_str())
            .collect()
    };
    if found.is_empty() {
        anyhow::bail!("no pod matches {reference:?}");
    }
    Ok(found)
}

pub(super) async fn check_reachability(
    api: &mut Api,
    r: &Reachability,
) -> anyhow::Result<Vec<(String, bool)>> {
    let from = resolve_pods(api, &r.from).await?;
    let targets: Vec<(String, String)> = if r.to.parse::<std::net::Ipv4Addr>().is_ok() {
        vec![(r.to.clone(), r.to.clone())]
    } else {
        resolve_pods(api, &r.to)
            .await?
            .iter()
            .map(|p| {
                (
                    p["metadata"]["name"].as_str().unwrap_or("").to_string(),
                    p["status"]["podIP"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect()
    };
    let mut results = Vec::new();
    for src in &from {
        let src_name = src["metadata"]["name"].as_str().unwrap_or("");
        let src_ns = src["metadata"]["namespace"].as_str().unwrap_or("default");
        for (dst_name, dst_ip) in &targets {
            let mut cmd = vec!["nc".to_string(), "-z".into(), "-v".into()];
            cmd.extend(crate::matrix::nc_protocol_flag(r.protocol).map(str::to_string));
            cmd.extend([
                "-w".into(),
                r.timeout.to_string(),
                dst_ip.clone(),
                r.port.to_string(),
            ]);
            let resp = api::exec_in(api, src_ns, src_name, &cmd, Vec::new()).await?;
            let reachable = resp.exit_code == 0;
            let verdict = connect_verdict(resp.exit_code, &String::from_utf8_lossy(&resp.stderr));
            let want = if r.allowed { "allowed" } else { "denied" };
            results.push((
                format!("reachability {src_name} -> {dst_name} ({dst_ip}:{}/{}): {verdict}, expected {want}", r.port, r.protocol),
                reachable == r.allowed,
            ));
        }
    }
    Ok(results)
}

/// Probes every pod pair of the namespaces and compares the grid cell by
/// cell: one result for the grid, with the differing cells named.
pub(super) async fn check_matrix(
    api: &mut Api,
    m: &MatrixExpect,
) -> anyhow::Result<Vec<(String, bool)>> {
    let expected = crate::matrix::parse(&m.expect).map_err(|e| anyhow::anyhow!(e))?;
    let pods = crate::matrix::pods_of(api, &m.namespaces).await?;
    let grid = crate::matrix::probe(api, &pods, m.port, m.protocol, m.timeout).await?;
    let (differences, unknown) = crate::matrix::compare(&grid, &expected);
    let title = format!(
        "matrix {}/{} over {}",
        m.protocol.as_str().to_lowercase(),
        m.port,
        m.namespaces.join(", ")
    );
    let mut line = format!(
        "{title}: {} of {} cells as expected",
        grid.pods.len() * grid.pods.len() - differences.len(),
        grid.pods.len() * grid.pods.len()
    );
    for d in &differences {
        let got = if d.reachable { "reachable" } else { "blocked" };
        line.push_str(&format!("; {} -> {} {got}", d.client, d.server));
    }
    for label in &unknown {
        line.push_str(&format!("; {label}: no such running pod"));
    }
    Ok(vec![(line, differences.is_empty() && unknown.is_empty())])
}

/// What `nc -z -v` says of a connection attempt: a refusal (an RST or
/// port-unreachable came back) and a drop (nothing came back before the
/// timeout) are different findings in a network, never one "blocked".
fn connect_verdict(exit_code: i32, stderr: &str) -> &'static str {
    if exit_code == 0 {
        "reachable"
    } else if stderr.contains("refused") {
        "refused"
    } else if stderr.contains("timed out") {
        "dropped (timed out)"
    } else if stderr.contains("unreachable") || stderr.contains("No route") {
        "unreachable"
    } else {
        "not reachable"
    }
}

/// The address family an answer of `rtype` holds, if it holds one.
fn answer_family(rtype: &str) -> Option<bool> {
    match rtype {
        "A" => Some(false),
        "AAAA" => Some(true),
        _ => None,
    }
}

/// Of `primary` and `listed`, the first address of the family `v6` names
/// (or `primary` itself when the answer type holds no address).
fn of_family(primary: &str, listed: Vec<String>, v6: Option<bool>) -> Option<String> {
    let Some(v6) = v6 else {
        return Some(primary.to_string()).filter(|ip| !ip.is_empty());
    };
    std::iter::once(primary.to_string())
        .chain(listed)
        .find(|ip| {
            ip.parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_ipv6() == v6)
        })
}

/// Expands `service:` and `pods:` references in expected DNS answers: the
/// ClusterIP and pod IPs of the family the query type holds (A: IPv4,
/// AAAA: IPv6).
async fn expected_answers(
    api: &mut Api,
    answers: &[String],
    rtype: &str,
) -> anyhow::Result<Vec<String>> {
    let v6 = answer_family(rtype);
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s.as_str().or_else(|| s["ip"].as_str()).map(String::from))
            .collect()
    };
    let mut out = Vec::new();
    for a in answers {
        if let Some(r) = a.strip_prefix("service:") {
            let (ns, name) = r.split_once('/').unwrap_or(("default", r));
            let svc = list(api, "Service")
                .await?
                .into_iter()
                .find(|s| s["metadata"]["namespace"] == ns && s["metadata"]["name"] == name);
            let ip = svc.as_ref().and_then(|s| {
                of_family(
                    s["spec"]["clusterIP"].as_str().unwrap_or(""),
                    strings(&s["spec"]["clusterIPs"]),
                    v6,
                )
            });
            let Some(ip) = ip.filter(|ip| ip != "None") else {
                anyhow::bail!(
                    "expected answer {a:?}: no such Service with a ClusterIP of the {rtype} query's family"
                );
            };
            out.push(ip);
        } else if let Some(r) = a.strip_prefix("pods:") {
            for p in resolve_pods(api, r).await? {
                if ready(&p) {
                    let primary = p["status"]["podIP"].as_str().unwrap_or("");
                    if let Some(ip) = of_family(primary, strings(&p["status"]["podIPs"]), v6) {
                        out.push(ip);
                    }
                }
            }
        } else {
            out.push(a.clone());
        }
    }
    out.sort();
    Ok(out)
}

pub(super) async fn check_dns(api: &mut Api, d: &DnsExpect) -> anyhow::Result<(String, bool)> {
    let from = resolve_pods(api, &d.from).await?;
    let pod = &from[0];
    let (ns, name) = (
        pod["metadata"]["namespace"].as_str().unwrap_or("default"),
        pod["metadata"]["name"].as_str().unwrap_or(""),
    );
    let cmd: Vec<String> = ["dig", "+search", &d.dns, &d.rtype]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let out = api::exec_in(api, ns, name, &cmd, Vec::new()).await?;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let status = text
        .lines()
        .find_map(|l| l.split("status: ").nth(1))
        .map(|s| s.split(',').next().unwrap_or("").trim().to_string())
        .unwrap_or_else(|| "no answer".into());
    let short: Vec<String> = {
        let cmd: Vec<String> = ["dig", "+search", "+short", &d.dns, &d.rtype]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let out = api::exec_in(api, ns, name, &cmd, Vec::new()).await?;
        let mut v: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| l.trim().to_string())
            .filter(|l| !l.is_empty())
            .collect();
        v.sort();
        v
    };
    let mut ok = true;
    let mut want = Vec::new();
    if let Some(rcode) = &d.rcode {
        ok &= status.eq_ignore_ascii_case(rcode);
        want.push(format!("status {rcode}"));
    }
    if let Some(answers) = &d.answers {
        let expected = expected_answers(api, answers, &d.rtype).await?;
        ok &= short == expected;
        want.push(format!("answers {expected:?}"));
    }
    Ok((
        format!(
            "dns {} {} from {name}: status {status}, answers {short:?}; expected {}",
            d.dns,
            d.rtype,
            want.join(", ")
        ),
        ok,
    ))
}

pub(super) async fn check_http(api: &mut Api, h: &HttpExpect) -> anyhow::Result<(String, bool)> {
    let from = resolve_pods(api, &h.from).await?;
    let pod = &from[0];
    let (ns, name) = (
        pod["metadata"]["namespace"].as_str().unwrap_or("default"),
        pod["metadata"]["name"].as_str().unwrap_or(""),
    );
    let count = h.count.unwrap_or(if h.spread.is_some() { 100 } else { 1 });
    let cmd: Vec<String> = ["curl", "-s", "-m", "5", "-w", "\\n%{http_code}", &h.http]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let mut statuses: BTreeMap<String, usize> = BTreeMap::new();
    let mut backends: BTreeMap<String, usize> = BTreeMap::new();
    for _ in 0..count {
        let out = api::exec_in(api, ns, name, &cmd, Vec::new()).await?;
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", text.as_str()));
        *statuses.entry(code.trim().to_string()).or_default() += 1;
        if let Ok(v) = serde_json::from_str::<Value>(body)
            && let Some(pod) = v["pod"].as_str()
        {
            *backends.entry(pod.to_string()).or_default() += 1;
        }
    }
    let mut ok = statuses.get(&h.status.to_string()) == Some(&count);
    let mut line = format!(
        "http {} from {name}: {count} requests, statuses {statuses:?}",
        h.http
    );
    if let Some(spread) = &h.spread {
        let min = backends.values().min().copied().unwrap_or(0);
        let share = min as f64 / count as f64;
        ok &= backends.len() >= spread.over && share >= spread.min_share;
        line.push_str(&format!(
            ", backends {backends:?} (expected >= {} each >= {:.0}%)",
            spread.over,
            spread.min_share * 100.0
        ));
    }
    Ok((line, ok))
}

#[cfg(test)]
mod tests {
    use super::{answer_family, connect_verdict, of_family};

    #[test]
    fn refused_and_dropped_are_told_apart() {
        let check = |code, stderr, expected| assert_eq!(connect_verdict(code, stderr), expected);
        check(
            0,
            "Connection to 10.244.1.3 8080 port [tcp/*] succeeded!\n",
            "reachable",
        );
        check(
            1,
            "nc: connect to 10.244.1.3 port 81 (tcp) failed: Connection refused\n",
            "refused",
        );
        check(
            1,
            "nc: connect to 10.244.1.3 port 80 (tcp) timed out: Operation now in progress\n",
            "dropped (timed out)",
        );
        check(
            1,
            "nc: connect to 10.244.1.3 port 53 (udp) timed out: no reply\n",
            "dropped (timed out)",
        );
        check(
            1,
            "nc: connect to 10.9.9.9 port 80 (tcp) failed: No route to host\n",
            "unreachable",
        );
        check(1, "", "not reachable");
    }

    #[test]
    fn expected_addresses_are_of_the_query_types_family() {
        let dual = || vec!["10.96.0.3".to_string(), "fd00:10:96::1".to_string()];
        assert_eq!(
            of_family("10.96.0.3", dual(), Some(false)).as_deref(),
            Some("10.96.0.3")
        );
        assert_eq!(
            of_family("10.96.0.3", dual(), Some(true)).as_deref(),
            Some("fd00:10:96::1")
        );
        // A single-stack Service has no address for AAAA.
        assert_eq!(
            of_family("10.96.0.3", vec!["10.96.0.3".into()], Some(true)),
            None
        );
        // IPv6 primary: A takes the secondary.
        assert_eq!(
            of_family(
                "fd00:10:96::1",
                vec!["fd00:10:96::1".into(), "10.96.0.3".into()],
                Some(false)
            )
            .as_deref(),
            Some("10.96.0.3")
        );
        assert_eq!(
            of_family("10.96.0.3", dual(), None).as_deref(),
            Some("10.96.0.3")
        );
        assert_eq!(answer_family("SRV"), None);
    }
}
