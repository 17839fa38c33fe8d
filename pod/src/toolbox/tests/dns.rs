//! The tools through cluster DNS. The test pod *is* at 10.96.0.10, where
//! a pod's resolv.conf points, and runs `podnet/dns` itself, so queries
//! take the loopback path without a node; `default/web` is given the same
//! address so that what DNS answers is also reachable.

use super::*;
use crate::cluster::{self, ClusterView};
use crate::dns::fixture;
use podnet_proto::model::network::KUBE_DNS_IP;

fn view() -> ClusterView {
    let mut view = fixture::cluster_view();
    if let Some(web) = view.services.get_mut("default/web") {
        web["spec"]["clusterIP"] = serde_json::json!("10.96.0.10");
        web["spec"]["clusterIPs"] = serde_json::json!(["10.96.0.10"]);
    }
    view
}

fn dns_pod() -> Arc<NetNs> {
    let info = PodInfo {
        namespace: "default".into(),
        name: "toolbox-0".into(),
        node: "node-1".into(),
    };
    NetNs::isolated(KUBE_DNS_IP, info)
}

fn start_dns(ns: &Arc<NetNs>, view: ClusterView) -> Running {
    let spec = ContainerSpec {
        name: "coredns".into(),
        image: "podnet/dns:1.11".into(),
        args: vec!["-conf".into(), "/etc/coredns/Corefile".into()],
        env: vec![],
        ports: vec![
            (53, Protocol::Udp),
            (53, Protocol::Tcp),
            (9153, Protocol::Tcp),
        ],
        workload_env: WorkloadEnv {
            cluster: cluster::fixed(view),
            ..WorkloadEnv::default()
        },
    };
    let cancel = CancellationToken::new();
    let running = images::start(ns.clone(), &spec, cancel.clone()).expect("dns starts");
    Running {
        cancel,
        task: tokio::spawn(running),
    }
}

#[tokio::test(start_paused = true)]
async fn curl_nc_and_ping_reach_services_by_name() {
    let ns = dns_pod();
    let dns = start_dns(&ns, view());
    let http = start(&ns, "podnet/http-echo", &[(8080, Protocol::Tcp)]);
    let echo = start(&ns, "podnet/tcp-echo", &[(9000, Protocol::Tcp)]);

    let out = exec(&ns, &["curl", "-s", "http://web:8080/"]).await;
    assert_eq!(out.exit_code, 0, "{}", text(&out.stderr));
    let answer: serde_json::Value = serde_json::from_slice(&out.stdout).expect("a JSON answer");
    assert_eq!(answer["pod"], "toolbox-0");
    assert_eq!(answer["host"], "web:8080");

    let out = exec(
        &ns,
        &["curl", "-s", "http://web.default.svc.cluster.local:8080/"],
    )
    .await;
    assert_eq!(out.exit_code, 0, "{}", text(&out.stderr));

    let out = exec_with_stdin(&ns, &["nc", "web", "9000"], b"hello\n").await;
    assert_eq!((out.exit_code, text(&out.stdout)), (0, "hello\n"));

    let out = exec(&ns, &["ping", "-c", "1", "web.default"]).await;
    assert_eq!(out.exit_code, 0, "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).starts_with("PING web.default (10.96.0.10) 56(84) bytes of data.\n"),
        "{}",
        text(&out.stdout)
    );

    let out = exec(&ns, &["curl", "-s", "-S", "http://nope:8080/"]).await;
    assert_eq!(
        (out.exit_code, text(&out.stderr)),
        (6, "curl: (6) Could not resolve host: nope\n")
    );
    // The search names do not exist; `nope.` as is goes to the upstream,
    // and this DNS pod has none (its resolv.conf names only itself): the
    // SERVFAIL is a temporary failure.
    let out = exec(&ns, &["ping", "-c", "1", "nope"]).await;
    assert_eq!(
        (out.exit_code, text(&out.stderr)),
        (2, "ping: nope: Temporary failure in name resolution\n")
    );
    let out = exec(&ns, &["nc", "-z", "nope", "80"]).await;
    assert_eq!(
        (out.exit_code, text(&out.stderr)),
        (
            1,
            "nc: getaddrinfo for host \"nope\" port 80: Temporary failure in name resolution\n"
        )
    );

    for running in [echo, http, dns] {
        running.stop().await;
    }
}

#[tokio::test(start_paused = true)]
async fn nslookup_prints_like_bind() {
    let ns = dns_pod();
    let dns = start_dns(&ns, view());
    let check = |argv: &'static [&'static str], code: i32, expected: &'static str| {
        let ns = ns.clone();
        async move {
            let out = exec(&ns, argv).await;
            assert_eq!(
                (out.exit_code, text(&out.stdout)),
                (code, expected),
                "{argv:?}: {}",
                text(&out.stderr)
            );
        }
    };
    check(
        &["nslookup", "web"],
        0,
        "Server:\t\t10.96.0.10\nAddress:\t10.96.0.10#53\n\n\
         Name:\tweb.default.svc.cluster.local\nAddress: 10.96.0.10\n\n",
    )
    .await;
    check(
        &["nslookup", "web.other", "10.96.0.10"],
        0,
        "Server:\t\t10.96.0.10\nAddress:\t10.96.0.10#53\n\n\
         Name:\tweb.other.svc.cluster.local\nAddress: 10.96.5.5\n\n",
    )
    .await;
    // `nope.` as is goes upstream, and this DNS pod has none (its
    // resolv.conf names only itself): SERVFAIL is the last word.
    check(
        &["nslookup", "nope"],
        1,
        "Server:\t\t10.96.0.10\nAddress:\t10.96.0.10#53\n\n** server can't find nope: SERVFAIL\n\n",
    )
    .await;
    check(
        &["nslookup", "alias"],
        0,
        "Server:\t\t10.96.0.10\nAddress:\t10.96.0.10#53\n\n\
         alias.default.svc.cluster.local\tcanonical name = web.default.svc.cluster.local.\n\
         Name:\tweb.default.svc.cluster.local\nAddress: 10.96.0.10\n\n",
    )
    .await;
    check(
        &["nslookup", "ext"],
        0,
        "Server:\t\t10.96.0.10\nAddress:\t10.96.0.10#53\n\n\
         ext.default.svc.cluster.local\tcanonical name = www.example.com.\n\n",
    )
    .await;
    check(
        &["nslookup", "10.244.1.5"],
        0,
        "Server:\t\t10.96.0.10\nAddress:\t10.96.0.10#53\n\n\
         5.1.244.10.in-addr.arpa\tname = db-0.db.default.svc.cluster.local.\n\n",
    )
    .await;
    check(
        &["nslookup", "-type=srv", "_http._tcp.web"],
        0,
        "Server:\t\t10.96.0.10\nAddress:\t10.96.0.10#53\n\n\
         _http._tcp.web.default.svc.cluster.local\tservice = 0 100 80 web.default.svc.cluster.local.\n\n",
    )
    .await;
    check(
        &["nslookup", "-type=txt", "dns-version.cluster.local"],
        0,
        "Server:\t\t10.96.0.10\nAddress:\t10.96.0.10#53\n\n\
         dns-version.cluster.local\ttext = \"1.1.0\"\n\n",
    )
    .await;
    check(
        &["nslookup", "-type=aaaa", "web"],
        0,
        "Server:\t\t10.96.0.10\nAddress:\t10.96.0.10#53\n\n\
         *** Can't find web.default.svc.cluster.local: No answer\n\n",
    )
    .await;
    // Nothing listens on 5353: refused at once.
    check(
        &["nslookup", "-port=5353", "web"],
        1,
        "Server:\t\t10.96.0.10\nAddress:\t10.96.0.10#5353\n\n\
         ;; communications error to 10.96.0.10#5353: connection refused\n;; no servers could be reached\n\n",
    )
    .await;
    let out = exec(&ns, &["nslookup"]).await;
    assert_eq!(out.exit_code, 1);
    dns.stop().await;
}

#[tokio::test(start_paused = true)]
async fn dig_prints_like_bind() {
    let ns = dns_pod();
    let dns = start_dns(&ns, view());

    let out = exec(&ns, &["dig", "web.default.svc.cluster.local"]).await;
    assert_eq!(out.exit_code, 0, "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    for expected in [
        "\n; <<>> DiG 9.18-podnet <<>> web.default.svc.cluster.local\n;; global options: +cmd\n;; Got answer:\n",
        ";; ->>HEADER<<- opcode: QUERY, status: NOERROR, id: ",
        "\n;; flags: qr aa rd; QUERY: 1, ANSWER: 1, AUTHORITY: 0, ADDITIONAL: 1\n;; WARNING: recursion requested but not available\n\n",
        "\n;; OPT PSEUDOSECTION:\n; EDNS: version: 0, flags:; udp: 1232\n",
        "\n;; QUESTION SECTION:\n;web.default.svc.cluster.local.\tIN\tA\n\n",
        "\n;; ANSWER SECTION:\nweb.default.svc.cluster.local. 5 IN\tA\t10.96.0.10\n\n",
        "\n;; Query time: 0 msec\n;; SERVER: 10.96.0.10#53(10.96.0.10) (UDP)\n;; WHEN: ",
        "\n;; MSG SIZE  rcvd: ",
    ] {
        assert!(stdout.contains(expected), "{expected:?} in\n{stdout}");
    }
    assert!(!stdout.contains("AUTHORITY SECTION"), "{stdout}");

    let short = |argv: &'static [&'static str], expected: &'static str| {
        let ns = ns.clone();
        async move {
            let out = exec(&ns, argv).await;
            assert_eq!(
                (out.exit_code, text(&out.stdout)),
                (0, expected),
                "{argv:?}"
            );
        }
    };
    short(
        &["dig", "+short", "web.default.svc.cluster.local"],
        "10.96.0.10\n",
    )
    .await;
    // dig does not search unless asked: `web.` is outside the zone.
    short(&["dig", "+short", "web"], "").await;
    short(&["dig", "+short", "+search", "web"], "10.96.0.10\n").await;
    short(
        &[
            "dig",
            "@10.96.0.10",
            "_http._tcp.web.default.svc.cluster.local",
            "SRV",
            "+short",
        ],
        "0 100 80 web.default.svc.cluster.local.\n",
    )
    .await;
    short(
        &["dig", "+short", "-x", "10.244.1.5"],
        "db-0.db.default.svc.cluster.local.\n",
    )
    .await;
    short(
        &["dig", "+short", "ext.default.svc.cluster.local"],
        "www.example.com.\n",
    )
    .await;
    short(
        &["dig", "+short", "alias.default.svc.cluster.local"],
        "web.default.svc.cluster.local.\n10.96.0.10\n",
    )
    .await;
    short(
        &[
            "dig",
            "+noall",
            "+answer",
            "dns-version.cluster.local",
            "TXT",
        ],
        "dns-version.cluster.local. 5\tIN\tTXT\t\"1.1.0\"\n",
    )
    .await;

    // Outside the zones, and no upstream: SERVFAIL, as the forward plugin
    // answers when no upstream can be asked.
    let out = exec(&ns, &["dig", "web"]).await;
    assert!(
        text(&out.stdout).contains("status: SERVFAIL"),
        "{}",
        text(&out.stdout)
    );
    assert!(
        text(&out.stdout).contains(";; flags: qr rd; QUERY: 1, ANSWER: 0"),
        "{}",
        text(&out.stdout)
    );

    let out = exec(&ns, &["dig", "nope.default.svc.cluster.local"]).await;
    let stdout = text(&out.stdout);
    assert_eq!(out.exit_code, 0);
    assert!(stdout.contains("status: NXDOMAIN"), "{stdout}");
    assert!(
        stdout.contains("\n;; AUTHORITY SECTION:\ncluster.local.\t\t5\tIN\tSOA\tns.dns.cluster.local. hostmaster.cluster.local. "),
        "{stdout}"
    );

    let out = exec(&ns, &["dig", "-p", "5353", "web.default.svc.cluster.local"]).await;
    assert_eq!(out.exit_code, 9);
    assert!(
        text(&out.stdout)
            .starts_with(";; communications error to 10.96.0.10#5353: connection refused\n"),
        "{}",
        text(&out.stdout)
    );
    assert!(text(&out.stdout).ends_with(";; no servers could be reached\n"));

    let out = exec(&ns, &["dig", "+bogus"]).await;
    assert_eq!(out.exit_code, 1);
    assert!(text(&out.stderr).starts_with("Invalid option: +bogus\n"));
    dns.stop().await;
}

#[tokio::test(start_paused = true)]
async fn dig_retries_truncated_answers_over_tcp() {
    let ns = dns_pod();
    let mut view = view();
    fixture::big_headless(&mut view, 100);
    let dns = start_dns(&ns, view);
    let out = exec(&ns, &["dig", "+noedns", "big.default.svc.cluster.local"]).await;
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains(";; Truncated, retrying in TCP mode.\n"),
        "{stdout}"
    );
    assert!(stdout.contains("ANSWER: 100,"), "{stdout}");
    assert!(stdout.contains("(TCP)"), "{stdout}");
    let out = exec(
        &ns,
        &["dig", "+tcp", "+short", "big.default.svc.cluster.local"],
    )
    .await;
    assert_eq!(text(&out.stdout).lines().count(), 100);
    dns.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_silent_server_times_out() {
    let ns = dns_pod();
    let _silent = ns.bind_udp(5353).unwrap();
    let started = tokio::time::Instant::now();
    let out = exec(&ns, &["dig", "-p", "5353", "+tries=1", "+time=1", "web"]).await;
    assert_eq!(out.exit_code, 9);
    assert_eq!(
        text(&out.stdout),
        ";; communications error to 10.96.0.10#5353: timed out\n\n; <<>> DiG 9.18-podnet <<>> -p 5353 +tries=1 +time=1 web\n;; global options: +cmd\n;; no servers could be reached\n"
    );
    assert_eq!(started.elapsed(), Duration::from_secs(1));
    let out = exec(&ns, &["nslookup", "-port=5353", "web"]).await;
    assert_eq!(out.exit_code, 1);
    assert!(
        text(&out.stdout).ends_with(";; connection timed out; no servers could be reached\n\n"),
        "{}",
        text(&out.stdout)
    );
}
