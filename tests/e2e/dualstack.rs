//! Dual-stack clusters (`podnet up --ip-family dual`, IPv4 primary as
//! kind's `dual`): nodes get a podCIDR of each family, pods an address of
//! each, Services the families their `ipFamilyPolicy` asks for (allocated
//! as the API server's `initIPFamilyFields` does), EndpointSlices one set
//! per address type, and cluster DNS answers AAAA and `ip6.arpa` PTR, as
//! `dig` on the host shows. Traffic crosses the cluster in both families:
//! a pod reaches Services at their IPv6 ClusterIPs and pods at their IPv6
//! addresses, across nodes, from its own IPv6 address (no NAT), and sees
//! both families in its interfaces and sockets.

use std::net::IpAddr;

use ipnet::IpNet;
use serde_json::Value;

use crate::harness::{Cluster, eventually, text};
use crate::pods::WEB;
use crate::services::CLIENT;

/// A Service `name` of the web pods with the `spec` lines (indented as
/// the first) before its selector and port.
fn web_service(name: &str, spec: &str) -> String {
    let spec = if spec.is_empty() {
        String::new()
    } else {
        format!("  {spec}\n")
    };
    format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}}}\nspec:\n{spec}  \
         selector: {{app: web}}\n  ports: [{{name: http, port: 80, targetPort: http}}]\n"
    )
}

/// The Services of every family shape the test reads.
fn services() -> String {
    [
        web_service("web-dual", "ipFamilyPolicy: PreferDualStack"),
        web_service("web-v6", "ipFamilies: [IPv6]"),
        // No family fields: the cluster's primary family, SingleStack.
        web_service("web-v4", ""),
        web_service(
            "web-np",
            "type: NodePort\n  ipFamilyPolicy: PreferDualStack",
        ),
        web_service(
            "web-hl",
            "clusterIP: None\n  ipFamilyPolicy: RequireDualStack",
        ),
    ]
    .join("---\n")
}

fn strs(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().map(String::from))
        .collect()
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

fn short(out: &str) -> Vec<String> {
    sorted(
        out.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect(),
    )
}

#[test]
fn dual_stack_pods_services_slices_and_dns_have_both_families() {
    let c = Cluster::up(&["--nodes", "2", "--ip-family", "dual"]);

    // Every node: an IPv4 /24 of 10.244.0.0/16, then an IPv6 /64 of
    // fd00:10:244::/56.
    let v4_pods: IpNet = "10.244.0.0/16".parse().unwrap();
    let v6_pods: IpNet = "fd00:10:244::/56".parse().unwrap();
    let nodes = c.items("nodes");
    let mut cidrs = std::collections::BTreeMap::new();
    // Every node: an IPv4 InternalIP and, as kind's dual-stack nodes, an
    // IPv6 one of the node network's ULA prefix.
    let v6_nodes: IpNet = "fc00:f853:ccd:e793::/64".parse().unwrap();
    let mut node_v6 = Vec::new();
    for node in &nodes {
        let internal: Vec<IpAddr> = node["status"]["addresses"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["type"] == "InternalIP")
            .map(|a| a["address"].as_str().unwrap().parse().unwrap())
            .collect();
        assert_eq!(internal.len(), 2, "{}", node["status"]);
        assert!(internal[0].is_ipv4(), "{internal:?}");
        assert!(v6_nodes.contains(&internal[1]), "{internal:?}");
        node_v6.push(internal[1]);
        let name = node["metadata"]["name"].as_str().unwrap().to_string();
        let node_cidrs: Vec<IpNet> = strs(&node["spec"]["podCIDRs"])
            .iter()
            .map(|c| c.parse().unwrap())
            .collect();
        assert_eq!(node_cidrs.len(), 2, "{name}: {}", node["spec"]);
        assert!(v4_pods.contains(&node_cidrs[0]) && node_cidrs[0].prefix_len() == 24);
        assert!(v6_pods.contains(&node_cidrs[1]) && node_cidrs[1].prefix_len() == 64);
        assert_eq!(node["spec"]["podCIDR"], node_cidrs[0].to_string());
        cidrs.insert(name, node_cidrs);
    }

    c.apply(&format!("{WEB}---\n{}---{CLIENT}", services()));
    let pods = c.ready_pods("web", 3);
    let mut pod_v4 = Vec::new();
    let mut pod_v6 = Vec::new();
    for pod in &pods {
        let ips: Vec<IpAddr> = pod["status"]["podIPs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|ip| ip["ip"].as_str().unwrap().parse().unwrap())
            .collect();
        let node = pod["spec"]["nodeName"].as_str().unwrap();
        assert_eq!(ips.len(), 2, "{}", pod["status"]);
        assert!(ips[0].is_ipv4() && cidrs[node][0].contains(&ips[0]));
        assert!(ips[1].is_ipv6() && cidrs[node][1].contains(&ips[1]));
        // podIP is the primary family's.
        assert_eq!(pod["status"]["podIP"], ips[0].to_string());
        pod_v4.push(ips[0].to_string());
        pod_v6.push(ips[1].to_string());
    }
    let (pod_v4, pod_v6) = (sorted(pod_v4), sorted(pod_v6));

    // Families and addresses as initIPFamilyFields gives them.
    let service = |name: &str| c.json(&["get", "service", name]);
    let dual = service("web-dual");
    assert_eq!(strs(&dual["spec"]["ipFamilies"]), ["IPv4", "IPv6"]);
    let dual_ips = strs(&dual["spec"]["clusterIPs"]);
    assert_eq!(dual_ips.len(), 2, "{}", dual["spec"]);
    let v4_services: IpNet = "10.96.0.0/12".parse().unwrap();
    let v6_services: IpNet = "fd00:10:96::/112".parse().unwrap();
    assert!(v4_services.contains(&dual_ips[0].parse::<IpAddr>().unwrap()));
    assert!(v6_services.contains(&dual_ips[1].parse::<IpAddr>().unwrap()));
    let v6 = service("web-v6");
    assert_eq!(strs(&v6["spec"]["ipFamilies"]), ["IPv6"]);
    assert_eq!(v6["spec"]["ipFamilyPolicy"], "SingleStack");
    let v6_ip = v6["spec"]["clusterIP"].as_str().unwrap().to_string();
    assert!(v6_services.contains(&v6_ip.parse::<IpAddr>().unwrap()));
    let v4 = service("web-v4");
    assert_eq!(strs(&v4["spec"]["ipFamilies"]), ["IPv4"]);
    assert_eq!(
        strs(&service("web-hl")["spec"]["ipFamilies"]),
        ["IPv4", "IPv6"]
    );

    // One slice per address type, each with the pods' address of its type.
    let slices_of = |svc: &str| -> Vec<(String, Vec<String>)> {
        let list = c.json(&[
            "get",
            "endpointslices",
            "-l",
            &format!("kubernetes.io/service-name={svc}"),
        ]);
        let mut out: Vec<(String, Vec<String>)> = list["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                let addresses = s["endpoints"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .flat_map(|e| strs(&e["addresses"]))
                    .collect();
                (
                    s["addressType"].as_str().unwrap().to_string(),
                    sorted(addresses),
                )
            })
            .collect();
        out.sort();
        out
    };
    let want_dual = vec![
        ("IPv4".to_string(), pod_v4.clone()),
        ("IPv6".to_string(), pod_v6.clone()),
    ];
    eventually(
        "dual-stack slices",
        std::time::Duration::from_secs(20),
        || (slices_of("web-dual") == want_dual).then_some(()),
    );
    assert_eq!(slices_of("web-v6"), [("IPv6".to_string(), pod_v6.clone())]);
    assert_eq!(slices_of("web-v4"), [("IPv4".to_string(), pod_v4.clone())]);

    // Real dig on the host: A and AAAA, and both reverse zones.
    let dig = |args: &[&str]| c.host_dig(2, args);
    let fqdn = |svc: &str| format!("{svc}.default.svc.cluster.local");
    assert_eq!(
        short(&dig(&["+short", "A", &fqdn("web-dual")])),
        [dual_ips[0].clone()]
    );
    assert_eq!(
        short(&dig(&["+short", "AAAA", &fqdn("web-dual")])),
        [dual_ips[1].clone()]
    );
    assert_eq!(
        short(&dig(&["+short", "AAAA", &fqdn("web-v6")])),
        std::slice::from_ref(&v6_ip)
    );
    for ip in [&dual_ips[0], &dual_ips[1]] {
        assert_eq!(
            short(&dig(&["+short", "-x", ip])),
            [format!("{}.", fqdn("web-dual"))],
            "PTR of {ip}"
        );
    }
    // A single-stack IPv4 Service has no AAAA: NOERROR without answers.
    let nodata = dig(&["AAAA", &fqdn("web-v4")]);
    assert!(
        nodata.contains("status: NOERROR") && nodata.contains("ANSWER: 0"),
        "{nodata}"
    );
    // Headless: each family's ready endpoints.
    eventually("headless AAAA", std::time::Duration::from_secs(20), || {
        (short(&dig(&["+short", "AAAA", &fqdn("web-hl")])) == pod_v6).then_some(())
    });
    assert_eq!(short(&dig(&["+short", "A", &fqdn("web-hl")])), pod_v4);
    // Pod names of IPv6 addresses, dashes for colons.
    let dashed = pod_v6[0].replace(':', "-");
    assert_eq!(
        short(&dig(&[
            "+short",
            "AAAA",
            &format!("{dashed}.default.pod.cluster.local")
        ])),
        [pod_v6[0].clone()]
    );

    // IPv4 traffic crosses the dual-stack Service as it always did.
    let out = c.exec("client", &["curl", "-s", "-m", "5", "http://web-dual/"]);
    assert!(out.status.success(), "curl: {}", text(&out.stderr));
    let echo: Value = serde_json::from_slice(&out.stdout).expect("echo json");
    let answered = echo["podIP"].as_str().unwrap_or_default().to_string();
    assert!(pod_v4.contains(&answered), "{echo}");

    // And IPv6: the dual-stack Service's IPv6 ClusterIP, the IPv6-only
    // Service, and each web pod's IPv6 address (on both nodes), every one
    // answered from the client's IPv6 address, as kube-proxy's IPv6
    // proxier leaves the source alone.
    let client = c.json(&["get", "pod", "client"]);
    let client_v6: IpAddr = client["status"]["podIPs"][1]["ip"]
        .as_str()
        .and_then(|ip| ip.parse().ok())
        .expect("the client's IPv6 address");
    let mut urls = vec![
        format!("http://[{}]/", dual_ips[1]),
        format!("http://[{v6_ip}]/"),
    ];
    urls.extend(pod_v6.iter().map(|ip| format!("http://[{ip}]:8080/")));
    for url in &urls {
        let out = c.exec("client", &["curl", "-s", "-m", "5", url]);
        assert!(out.status.success(), "curl {url}: {}", text(&out.stderr));
        let echo: Value = serde_json::from_slice(&out.stdout).expect("echo json");
        let seen: std::net::SocketAddr = echo["client"]
            .as_str()
            .and_then(|c| c.parse().ok())
            .unwrap_or_else(|| panic!("client address in {echo}"));
        assert_eq!(seen.ip(), client_v6, "{url}: {echo}");
        assert!(pod_v4.contains(&echo["podIP"].as_str().unwrap_or_default().to_string()));
    }
    // A NodePort on each node's IPv6 InternalIP, masqueraded (the Cluster
    // policy) as that node's IPv6 address.
    let node_port = c.json(&["get", "service", "web-np"])["spec"]["ports"][0]["nodePort"]
        .as_u64()
        .expect("a nodePort");
    for ip in &node_v6 {
        let url = format!("http://[{ip}]:{node_port}/");
        let out = c.exec("client", &["curl", "-s", "-m", "5", &url]);
        assert!(out.status.success(), "curl {url}: {}", text(&out.stderr));
        let echo: Value = serde_json::from_slice(&out.stdout).expect("echo json");
        let seen: std::net::SocketAddr = echo["client"].as_str().unwrap().parse().unwrap();
        assert_eq!(seen.ip(), *ip, "{url}: {echo}");
    }
    // By name, `-6` looks the Service up as AAAA and goes over IPv6;
    // `-4` refuses an IPv6 literal as getaddrinfo with AF_INET does.
    let out = c.exec(
        "client",
        &["curl", "-s", "-6", "-m", "5", "http://web-dual/"],
    );
    assert!(out.status.success(), "curl -6: {}", text(&out.stderr));
    let echo: Value = serde_json::from_slice(&out.stdout).expect("echo json");
    let seen: std::net::SocketAddr = echo["client"].as_str().unwrap().parse().unwrap();
    assert_eq!(seen.ip(), client_v6, "{echo}");
    let out = c.exec("client", &["curl", "-s", "-4", "-m", "5", &urls[0]]);
    assert_eq!(out.status.code(), Some(6), "{}", text(&out.stderr));
    // A port nothing listens on refuses over IPv6 as over IPv4.
    let refused = c.exec(
        "client",
        &[
            "curl",
            "-s",
            "-m",
            "5",
            &format!("http://[{}]:9/", pod_v6[0]),
        ],
    );
    assert_eq!(refused.status.code(), Some(7), "{}", text(&refused.stderr));
    // ping and the pod's own view of its addresses.
    let ping = c.exec("client", &["ping", "-c", "1", "-W", "2", &pod_v6[0]]);
    assert!(ping.status.success(), "ping: {}", text(&ping.stdout));
    let hosts = text(&c.exec("client", &["cat", "/etc/hosts"]).stdout);
    assert!(hosts.contains(&format!("{client_v6}\tclient\n")), "{hosts}");
    let addr = text(&c.exec("client", &["ip", "addr"]).stdout);
    assert!(
        addr.contains(&format!("inet6 {client_v6}/64 scope global")),
        "{addr}"
    );
}
