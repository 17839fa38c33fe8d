//! `from: host` expectations: real curl on this machine, through the
//! edge's real listeners, like a user's browser.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use podnet_proto::model::view::{EndpointSliceView, ServiceView};
use serde_json::Value;

use super::expect::list;
use super::schema::{HttpExpect, host_target};
use crate::api::Api;
use crate::manifest::InputError;

/// The real host port the edge listens on for `port` of the LoadBalancer
/// Service that holds `ip` (its status lists real ports in the order of the
/// Service's ports).
fn edge_port(services: &[Value], ip: &str, port: u16) -> Option<u16> {
    services
        .iter()
        .map(ServiceView)
        .filter(|svc| {
            svc.load_balancer_ip()
                .is_some_and(|lb| lb.to_string() == ip)
        })
        .find_map(|svc| svc.edge_port_for(port))
}

/// The address of LoadBalancer Service `namespace/name`.
fn load_balancer_address(services: &[Value], namespace: &str, name: &str) -> Option<String> {
    services
        .iter()
        .map(ServiceView)
        .find(|s| s.meta().namespace() == namespace && s.meta().name() == name)?
        .load_balancer_ip()
        .map(|ip| ip.to_string())
}

/// How long a `from: host` expectation may take to see its first expected
/// answer: the edge's health checks and the ingress controller's routes
/// follow the cluster a moment after pods are Ready, as in a real cluster.
const HOST_SETTLE: Duration = Duration::from_secs(15);

/// Where the edge listens for `target`: the LoadBalancer address and the
/// real port, which appear in the Service's status once the edge has
/// opened the listener; `None` if they have not by `deadline`.
pub(super) async fn edge_address(
    api: &mut Api,
    target: &super::schema::HostTarget,
    deadline: tokio::time::Instant,
) -> anyhow::Result<Option<(String, u16)>> {
    loop {
        let services = list(api, "Service").await?;
        let ip = match &target.resolve_to {
            Some(to) if to == "ingress" => {
                load_balancer_address(&services, "podnet-ingress", "podnet-ingress-controller")
            }
            Some(to) if to.starts_with("service:") => {
                let reference = &to["service:".len()..];
                let (ns, name) = reference.split_once('/').unwrap_or(("default", reference));
                load_balancer_address(&services, ns, name)
            }
            Some(ip) => Some(ip.clone()),
            None => Some(target.host.clone()),
        };
        if let Some(ip) = ip
            && let Some(real) = edge_port(&services, &ip, target.port)
        {
            return Ok(Some((ip, real)));
        }
        if tokio::time::Instant::now() > deadline {
            return Ok(None);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Real curl on this machine, through the edge.
pub(super) async fn check_http_from_host(
    api: &mut Api,
    h: &HttpExpect,
    base: &Path,
) -> anyhow::Result<(String, bool)> {
    let target = host_target(h).map_err(InputError)?;
    let deadline = tokio::time::Instant::now() + HOST_SETTLE;
    let Some((ip, real_port)) = edge_address(api, &target, deadline).await? else {
        return Ok((
            format!(
                "http {} from host: no LoadBalancer listens for it (is the Service's EXTERNAL-IP still <pending>?)",
                h.http
            ),
            false,
        ));
    };
    let mut args: Vec<String> = vec![
        "-s".into(),
        "-m".into(),
        "5".into(),
        "-w".into(),
        "\n%{http_code}".into(),
        "--connect-to".into(),
        format!("{}:{}:{ip}:{real_port}", target.host, target.port),
    ];
    if let Some(ca) = &h.cacert {
        args.push("--cacert".into());
        args.push(base.join(ca).display().to_string());
    }
    args.push(h.http.clone());
    let backend_ips = match &h.backend {
        Some(b) => Some(service_endpoint_ips(api, b).await?),
        None => None,
    };
    let count = h.count.unwrap_or(1);
    let curl = |args: Vec<String>| async move {
        let out = tokio::process::Command::new("curl")
            .args(&args)
            .output()
            .await
            .map_err(|e| anyhow::anyhow!("cannot run curl (is it installed?): {e}"))?;
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", text.as_str()));
        anyhow::Ok((code.trim().to_string(), body.to_string()))
    };
    // Settle: the first expected answer may take a moment.
    loop {
        let (code, _) = curl(args.clone()).await?;
        if code == h.status.to_string() || tokio::time::Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut statuses: BTreeMap<String, usize> = BTreeMap::new();
    let mut wrong_backend = 0;
    for _ in 0..count {
        let (code, body) = curl(args.clone()).await?;
        *statuses.entry(code).or_default() += 1;
        if let Some(ips) = &backend_ips {
            let pod_ip = serde_json::from_str::<Value>(&body)
                .ok()
                .and_then(|v| v["podIP"].as_str().map(String::from));
            if !pod_ip.is_some_and(|ip| ips.contains(&ip)) {
                wrong_backend += 1;
            }
        }
    }
    let ok = statuses.get(&h.status.to_string()) == Some(&count) && wrong_backend == 0;
    let mut line = format!(
        "http {} from host (via {ip}:{real_port}): {count} requests, statuses {statuses:?}",
        h.http
    );
    if let Some(b) = &h.backend {
        line.push_str(&format!(", {wrong_backend} not served by {b}"));
    }
    Ok((line, ok))
}

/// The endpoint addresses of Service `[NS/]NAME`.
async fn service_endpoint_ips(api: &mut Api, reference: &str) -> anyhow::Result<Vec<String>> {
    let (ns, name) = reference.split_once('/').unwrap_or(("default", reference));
    let slices = list(api, "EndpointSlice").await?;
    Ok(slices
        .iter()
        .map(EndpointSliceView)
        .filter(|s| s.meta().namespace() == ns && s.service_name() == name)
        .flat_map(EndpointSliceView::addresses)
        .map(String::from)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edge_ports_follow_the_service_ports_in_order() {
        let svc = serde_json::json!({
            "spec": {"ports": [{"port": 80, "nodePort": 30000}, {"port": 443, "nodePort": 30001}]},
            "status": {"loadBalancer": {"ingress": [{"ip": "127.0.1.1", "ports": [{"port": 80}, {"port": 40443}]}]}},
        });
        let services = [svc];
        assert_eq!(edge_port(&services, "127.0.1.1", 443), Some(40443));
        assert_eq!(edge_port(&services, "127.0.1.1", 80), Some(80));
        assert_eq!(edge_port(&services, "127.0.1.1", 8080), None);
        assert_eq!(edge_port(&services, "127.0.1.2", 80), None);
    }
}
