//! Bad input gets a clear error that says what and where, and changes
//! nothing.

use std::time::Duration;

use podnet_lab::record::alive;

use crate::harness::{self, Cluster, eventually, text};

#[test]
fn bad_manifests_are_rejected_whole_with_their_location() {
    let c = Cluster::up(&["--nodes", "1"]);

    // Malformed YAML: file, line and column; nothing applied.
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "apiVersion: v1\nkind: Namespace\nmetadata: {name: first}\n---\nkind: Pod\nmetadata:\n  name: [oops\n").unwrap();
    let out = c.run(&["apply", "-f", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(64), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    let location = format!("{}:", bad.display());
    assert!(err.contains(&location), "error must name the file: {err}");
    let after = err.split(&location).nth(1).unwrap();
    let mut parts = after.split(':');
    assert!(
        parts.next().unwrap().parse::<u32>().is_ok()
            && parts.next().unwrap().parse::<u32>().is_ok(),
        "line:column in {err}"
    );
    assert!(
        !c.ok(&["get", "namespaces"]).contains("first"),
        "nothing may be applied from a malformed file"
    );

    // Invalid objects: the field path is named and the valid ones in the
    // same file are not applied.
    for (manifest, path) in [
        (
            "apiVersion: v1\nkind: Pod\nmetadata: {}\nspec: {containers: [{name: c, image: podnet/toolbox}]}",
            "metadata.name",
        ),
        (
            "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: c, image: podnet/http-echo, ports: [{containerPort: 70000}]}]}",
            "spec.containers[0].ports[0].containerPort",
        ),
        ("apiVersion: v1\nkind: Gadget\nmetadata: {name: g}", "kind"),
    ] {
        let file = format!(
            "apiVersion: v1\nkind: Namespace\nmetadata: {{name: second}}\n---\n{manifest}\n"
        );
        let out = c.run_stdin(&["apply", "-f", "-"], &file);
        assert_eq!(
            out.status.code(),
            Some(64),
            "{manifest}: {}",
            text(&out.stderr)
        );
        assert!(
            text(&out.stderr).contains(path),
            "error must name {path}: {}",
            text(&out.stderr)
        );
        assert!(
            !c.ok(&["get", "namespaces"]).contains("second"),
            "half-applied: {manifest}"
        );
    }
    let out = c.run_stdin(
        &["apply", "-f", "-"],
        "apiVersion: v1\nkind: Gadget\nmetadata: {name: g}\n",
    );
    assert!(
        text(&out.stderr).contains("v1/Pod"),
        "unknown kind must list the known ones: {}",
        text(&out.stderr)
    );

    // Emulated in part: applied with a warning naming the field and what
    // of it podnet does not do.
    let out = c.run_stdin(
        &["apply", "-f", "-"],
        "apiVersion: v1\nkind: Pod\nmetadata: {name: vol}\nspec:\n  hostNetwork: true\n  containers: [{name: c, image: podnet/toolbox}]\n",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("spec.hostNetwork: the pod keeps its own pod IP"),
        "warning must name the field: {}",
        text(&out.stderr)
    );

    // A dnsConfig the kubelet could not write: rejected with its path.
    let out = c.run_stdin(
        &["apply", "-f", "-"],
        "apiVersion: v1\nkind: Pod\nmetadata: {name: dns}\nspec:\n  dnsConfig: {nameservers: [dns.example]}\n  containers: [{name: c, image: podnet/toolbox}]\n",
    );
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains(
            "spec.dnsConfig.nameservers[0]: Invalid value: \"dns.example\": must be a valid IP address"
        ),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_bad_node_resolv_conf_is_refused_before_anything_starts() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let resolv_conf = dir.path().join("resolv.conf");
    std::fs::write(&resolv_conf, "search example.com\nnameserver dns.example\n").unwrap();
    let out = std::process::Command::new(harness::BIN)
        .args(["up", "--nodes", "1", "--resolv-conf"])
        .arg(&resolv_conf)
        .env("PODNET_STATE_DIR", &state)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64), "a bad flag value is bad input");
    assert!(
        text(&out.stderr).contains(&format!(
            "{}: line 2: nameserver \"dns.example\" is not an IP address",
            resolv_conf.display()
        )),
        "{}",
        text(&out.stderr)
    );
    assert!(
        !state.join("supervisor.pid").exists() && !state.join("logs").exists(),
        "nothing may have started"
    );
}

#[test]
fn unknown_image_fails_the_pod_with_the_known_images() {
    let c = Cluster::up(&["--nodes", "1"]);
    c.apply("apiVersion: v1\nkind: Pod\nmetadata: {name: x}\nspec: {containers: [{name: c, image: nginx:1.27}]}\n");
    let message = eventually("ErrImagePull", Duration::from_secs(10), || {
        let p = c.json(&["get", "pod", "x"]);
        let w = &p["status"]["containerStatuses"][0]["state"]["waiting"];
        (w["reason"] == "ErrImagePull").then(|| w["message"].as_str().unwrap_or("").to_string())
    });
    for image in [
        "podnet/http-echo",
        "podnet/tcp-echo",
        "podnet/udp-echo",
        "podnet/toolbox",
    ] {
        assert!(message.contains(image), "{message}");
    }
    assert!(c.ok(&["get", "pods"]).contains("ErrImagePull"));
}

#[test]
fn an_lb_pool_off_loopback_is_refused_before_anything_starts() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let out = std::process::Command::new(harness::BIN)
        .args(["up", "--nodes", "1", "--lb-pool", "10.1.0.0/24"])
        .env("PODNET_STATE_DIR", &state)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64), "a bad flag value is bad input");
    assert!(
        text(&out.stderr).contains("not a loopback range"),
        "{}",
        text(&out.stderr)
    );
    assert!(
        !state.join("supervisor.pid").exists() && !state.join("logs").exists(),
        "nothing may have started"
    );
}

#[test]
fn second_up_in_the_same_state_dir_is_refused() {
    let c = Cluster::up(&["--nodes", "1"]);
    let before = c.info();
    let out = c.run(&["up", "--nodes", "1"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("already running"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(
        c.info()["controlplane"],
        before["controlplane"],
        "the running cluster must be untouched"
    );
}

#[test]
fn a_new_cluster_in_a_state_dir_starts_new_logs_without_colour() {
    let c = Cluster::up(&["--nodes", "1"]);
    c.ok(&["down"]);
    c.ok(&["up", "--nodes", "1"]);
    for log in ["controlplane", "node-1", "edge"] {
        let path = c.state.join("logs").join(format!("{log}.log"));
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
        assert!(
            !text.contains('\x1b'),
            "{path:?} has terminal colour codes:\n{text}"
        );
        // A node joins once per cluster: one join in a new log. The node is
        // Ready as soon as it joined, so `up` may return before the node
        // has logged it.
        if log == "node-1" {
            let text = eventually(
                "the node's join in its log",
                Duration::from_secs(10),
                || {
                    let text = std::fs::read_to_string(&path).ok()?;
                    text.contains("joined the cluster").then_some(text)
                },
            );
            let joins = text.matches("joined the cluster").count();
            assert_eq!(
                joins, 1,
                "{path:?} holds more than this cluster's log:\n{text}"
            );
        }
    }
}

#[test]
fn garbage_on_the_overlay_socket_is_dropped() {
    let c = Cluster::up(&["--nodes", "2"]);
    c.apply(crate::pods::WEB);
    let pods = c.ready_pods("web", 3);
    let info = c.info();
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    for node in info["nodes"].as_array().unwrap() {
        let addr = node["underlay"].as_str().unwrap();
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for i in 0..2000usize {
            let len = i % 1500 + 1;
            let junk: Vec<u8> = (0..len)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    seed as u8
                })
                .collect();
            let _ = socket.send_to(&junk, addr);
        }
    }
    for node in info["nodes"].as_array().unwrap() {
        assert!(
            alive(node["pid"].as_u64().unwrap() as u32),
            "a node died of garbage"
        );
    }
    let from = pods[0]["metadata"]["name"].as_str().unwrap();
    for p in &pods {
        let ip = p["status"]["podIP"].as_str().unwrap();
        let out = c.exec(
            from,
            &["curl", "-s", "-m", "5", &format!("http://{ip}:8080/")],
        );
        assert!(
            out.status.success(),
            "overlay broken after garbage: {}",
            text(&out.stderr)
        );
    }
}

#[test]
fn garbage_request_bodies_get_a_status_and_leave_the_api_serving() {
    use podnet_lab::raw_grpc::{self, API_METHODS};
    let c = Cluster::up(&["--nodes", "1"]);
    let record = podnet_lab::record::ClusterRecord::read(&c.state).expect("cluster record");
    let admin = podnet_lab::api::admin_credentials(&c.state).expect("admin credentials");
    let bodies = raw_grpc::garbage_bodies(10);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut refused = 0;
    runtime.block_on(async {
        let channel = admin
            .endpoint(&record.controlplane, podnet_proto::auth::API_SERVER_NAME)
            .expect("endpoint")
            .connect_timeout(Duration::from_secs(5))
            .connect_lazy();
        for &(method, streaming) in API_METHODS {
            for body in &bodies {
                let call = raw_grpc::call(channel.clone(), method, streaming, body.clone());
                match tokio::time::timeout(Duration::from_secs(10), call).await {
                    Err(_) => panic!("{method} with {} bytes: no answer in 10 s", body.len()),
                    Ok(Ok(_)) => {}
                    Ok(Err(status)) => {
                        assert!(
                            raw_grpc::is_an_answer(&status),
                            "{method} with {:02x?}: {status:?}",
                            &body[..body.len().min(32)]
                        );
                        refused += 1;
                    }
                }
            }
        }
    });
    eprintln!(
        "{} bodies to each of {} methods: {refused} refused",
        bodies.len(),
        API_METHODS.len()
    );
    assert!(refused > 0);
    // The same control plane still serves, and nothing in it panicked.
    assert!(alive(record.controlplane_pid), "the control plane exited");
    c.ok(&["get", "pods", "-A"]);
    let log = std::fs::read_to_string(c.state.join("logs/controlplane.log")).expect("log");
    assert!(!log.contains("panicked"), "{log}");
}

#[test]
fn bad_outside_names_and_upstreams_are_refused_before_anything_starts() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    for (flags, says) in [
        (["--external", "api.example.com"], "expected NAME=IP"),
        (
            [
                "--external",
                "api.example.com=203.0.113.10,serve=podnet/toolbox",
            ],
            "outside host api.example.com cannot serve \"podnet/toolbox\": an outside host serves one of podnet/http-echo, podnet/tcp-echo, podnet/udp-echo",
        ),
        (
            [
                "--external",
                "api.example.com=10.244.0.9,serve=podnet/http-echo",
            ],
            "outside host api.example.com serves at 10.244.0.9, which is in the pod network 10.244.0.0/16",
        ),
        (
            ["--external", "localhost=203.0.113.10"],
            "at least two labels",
        ),
        (["--external", "api.example.com=127.0.0.1"], "loopback"),
        (["--dns-upstream", "localhost:53"], "expected IP:PORT"),
    ] {
        let out = std::process::Command::new(harness::BIN)
            .args(["up", "--nodes", "1"])
            .args(flags)
            .env("PODNET_STATE_DIR", &state)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(64), "{flags:?}: bad input");
        assert!(text(&out.stderr).contains(says), "{}", text(&out.stderr));
        assert!(!state.join("cluster.json").exists(), "nothing started");
    }
}
