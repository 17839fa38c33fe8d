//! Dual-stack clusters (`podnet up --ip-family dual`, IPv4 primary as
//! kind's `dual`): nodes get a podCIDR of each family, pods an address of
//! each, Services the families their `ipFamilyPolicy` asks for (allocated
//! as the API server's `initIPFamilyFields` does), EndpointSlices one set
//! per address type, and cluster DNS answers AAAA and `ip6.arpa` PTR, as
//! `dig` on the host shows. Traffic crosses the cluster in both families:
//! a pod reaches Services at their IPv6 ClusterIPs and pods at their IPv6
//! addresses, across nodes, from its own IPv6 address (no NAT), and sees
//! both families in its interfaces and sockets. IPv6 single-stack
//! clusters (`--ip-family ipv6`) are IPv6 at every layer.

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

/// `--ip-family ipv6`, as kind's `ipv6`: every podCIDR, pod address,
/// ClusterIP and the well-known Service addresses are IPv6 (kube-dns at
/// the tenth address of fd00:10:96::/112), a Service asking for IPv4 is
/// refused as the API server refuses a family the cluster lacks, and
/// traffic reaches pods by name from a pod, by NodePort on a node's IPv6
/// InternalIP, and from the host through the edge to the IPv6 NodePorts.
#[test]
fn ipv6_single_stack_clusters_are_ipv6_end_to_end() {
    let c = Cluster::up(&["--nodes", "2", "--ip-family", "ipv6"]);
    let v6_pods: IpNet = "fd00:10:244::/56".parse().unwrap();
    let v6_nodes: IpNet = "fc00:f853:ccd:e793::/64".parse().unwrap();
    let v6_services: IpNet = "fd00:10:96::/112".parse().unwrap();
    // The host is the node network's ::1, as .1 is on IPv4.
    let host: IpAddr = "fc00:f853:ccd:e793::1".parse().unwrap();

    // One IPv6 podCIDR per node; the IPv6 InternalIP listed first, as the
    // kubelet lists the primary family's address (kubectl shows it).
    let mut node_ips = std::collections::BTreeMap::new();
    let mut cidrs = std::collections::BTreeMap::new();
    for node in c.items("nodes") {
        let name = node["metadata"]["name"].as_str().unwrap().to_string();
        let node_cidrs: Vec<IpNet> = strs(&node["spec"]["podCIDRs"])
            .iter()
            .map(|c| c.parse().unwrap())
            .collect();
        assert_eq!(node_cidrs.len(), 1, "{name}: {}", node["spec"]);
        assert!(v6_pods.contains(&node_cidrs[0]) && node_cidrs[0].prefix_len() == 64);
        assert_eq!(node["spec"]["podCIDR"], node_cidrs[0].to_string());
        let first: IpAddr = node["status"]["addresses"][0]["address"]
            .as_str()
            .and_then(|ip| ip.parse().ok())
            .unwrap_or_else(|| panic!("{name}: {}", node["status"]));
        assert!(
            v6_nodes.contains(&first) && first != host,
            "{name}: {first}"
        );
        node_ips.insert(name.clone(), first);
        cidrs.insert(name, node_cidrs[0]);
    }
    let wide = c.ok(&["get", "nodes", "-o", "wide"]);
    for ip in node_ips.values() {
        assert!(wide.contains(&ip.to_string()), "{wide}");
    }
    let cluster_ip = |ns: &str, name: &str| {
        c.json(&["get", "service", name, "-n", ns])["spec"]["clusterIP"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    assert_eq!(cluster_ip("default", "kubernetes"), "fd00:10:96::1");
    assert_eq!(cluster_ip("kube-system", "kube-dns"), "fd00:10:96::a");

    // A Service of a family the cluster does not have is refused whole.
    let out = c.run_stdin(
        &["apply", "-f", "-"],
        &web_service("web-v4", "ipFamilies: [IPv4]"),
    );
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{err}");
    assert!(
        err.contains("spec.ipFamilies[0]") && err.contains("not configured on this cluster"),
        "{err}"
    );

    c.apply(&format!(
        "{WEB}---\n{}---{CLIENT}",
        web_service("web", "type: LoadBalancer")
    ));
    let pods = c.ready_pods("web", 3);
    let mut pod_v6 = Vec::new();
    for pod in &pods {
        let ips = &pod["status"]["podIPs"];
        assert_eq!(ips.as_array().map(Vec::len), Some(1), "{}", pod["status"]);
        let ip: IpAddr = pod["status"]["podIP"].as_str().unwrap().parse().unwrap();
        let node = pod["spec"]["nodeName"].as_str().unwrap();
        assert!(cidrs[node].contains(&ip), "{ip} on {node}");
        assert_eq!(ips[0]["ip"], ip.to_string());
        // hostIP is the node's address of the pod's family.
        assert_eq!(pod["status"]["hostIP"], node_ips[node].to_string());
        pod_v6.push(ip.to_string());
    }
    let web = c.json(&["get", "service", "web"]);
    assert_eq!(strs(&web["spec"]["ipFamilies"]), ["IPv6"]);
    let web_ip = web["spec"]["clusterIP"].as_str().unwrap().to_string();
    assert!(v6_services.contains(&web_ip.parse::<IpAddr>().unwrap()));
    eventually("an IPv6 slice", std::time::Duration::from_secs(20), || {
        let slices = c.json(&[
            "get",
            "endpointslices",
            "-l",
            "kubernetes.io/service-name=web",
        ]);
        let types: Vec<&str> = slices["items"]
            .as_array()?
            .iter()
            .filter_map(|s| s["addressType"].as_str())
            .collect();
        (types == ["IPv6"]).then_some(())
    });

    // Cluster DNS from the host: AAAA and its PTR; no A record at all.
    let fqdn = "web.default.svc.cluster.local";
    assert_eq!(
        short(&c.host_dig(2, &["+short", "AAAA", fqdn])),
        std::slice::from_ref(&web_ip)
    );
    assert_eq!(
        short(&c.host_dig(2, &["+short", "-x", &web_ip])),
        [format!("{fqdn}.")]
    );
    let nodata = c.host_dig(2, &["A", fqdn]);
    assert!(
        nodata.contains("status: NOERROR") && nodata.contains("ANSWER: 0"),
        "{nodata}"
    );

    // From a pod: its resolv.conf names the IPv6 cluster DNS, a name
    // resolves to its AAAA (the pod has no IPv4 to use an A record with),
    // and the answer comes from a web pod, to the client's own address.
    let resolv = text(&c.exec("client", &["cat", "/etc/resolv.conf"]).stdout);
    assert!(resolv.contains("nameserver fd00:10:96::a\n"), "{resolv}");
    let client_ip = c.json(&["get", "pod", "client"])["status"]["podIP"]
        .as_str()
        .and_then(|ip| ip.parse::<IpAddr>().ok())
        .expect("the client's address");
    let echo_of = |out: std::process::Output, what: &str| -> Value {
        assert!(out.status.success(), "{what}: {}", text(&out.stderr));
        serde_json::from_slice(&out.stdout).expect("echo json")
    };
    let seen = |echo: &Value| -> IpAddr {
        echo["client"]
            .as_str()
            .and_then(|c| c.parse::<std::net::SocketAddr>().ok())
            .map(|a| a.ip())
            .unwrap_or_else(|| panic!("client address in {echo}"))
    };
    let echo = echo_of(
        c.exec("client", &["curl", "-s", "-m", "5", "http://web/"]),
        "curl http://web/",
    );
    assert!(pod_v6.contains(&echo["podIP"].as_str().unwrap_or_default().to_string()));
    assert_eq!(seen(&echo), client_ip, "{echo}");
    // `-4` finds no A record: curl's "could not resolve" (6).
    let out = c.exec("client", &["curl", "-s", "-4", "-m", "5", "http://web/"]);
    assert_eq!(out.status.code(), Some(6), "{}", text(&out.stderr));
    let addr = text(&c.exec("client", &["ip", "addr", "show", "eth0"]).stdout);
    assert!(
        addr.contains(&format!("inet6 {client_ip}/64")) && !addr.contains("inet "),
        "{addr}"
    );

    // A NodePort on each node's IPv6 InternalIP, masqueraded as that node.
    let node_port = web["spec"]["ports"][0]["nodePort"]
        .as_u64()
        .expect("a nodePort");
    for ip in node_ips.values() {
        let url = format!("http://[{ip}]:{node_port}/");
        let echo = echo_of(c.exec("client", &["curl", "-s", "-m", "5", &url]), &url);
        assert_eq!(seen(&echo), *ip, "{url}: {echo}");
    }

    // From the host through the edge: the LoadBalancer address on the
    // host's loopback, carried to a node's IPv6 NodePort from the host's
    // IPv6 address and masqueraded there (the Cluster policy).
    let front = crate::edge::front(&c, "web");
    let out = std::process::Command::new("curl")
        .args(["-sS", "-m", "5", &format!("http://{front}/")])
        .output()
        .expect("run curl");
    let echo = echo_of(out, "curl the load balancer");
    assert!(pod_v6.contains(&echo["podIP"].as_str().unwrap_or_default().to_string()));
    assert!(node_ips.values().any(|ip| *ip == seen(&echo)), "{echo}");
}
