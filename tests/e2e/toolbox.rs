//! The in-pod troubleshooting commands through `podnet exec`: the files the
//! kubelet writes, the container environment with Service variables,
//! busybox wget, socket listings and `sh -c`.

use crate::harness::{Cluster, text};
use crate::pods::WEB;
use crate::services::{CLIENT, WEB_SVC};

fn ok(c: &Cluster, pod: &str, cmd: &[&str]) -> String {
    let out = c.exec(pod, cmd);
    assert!(
        out.status.success(),
        "{cmd:?} in {pod}: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

#[test]
fn troubleshooting_commands_read_as_on_a_real_cluster() {
    let c = Cluster::up(&["--nodes", "2"]);
    c.apply(&format!("{WEB}---{WEB_SVC}"));
    let web_pods = c.ready_pods("web", 3);
    // The Service exists well before the client starts (the web pods took
    // their readiness probes to get here), so the kubelet's Service
    // variables of the client include it.
    c.apply(CLIENT);
    let client = c.ready_pods("client", 1).remove(0);
    let client_ip = client["status"]["podIP"].as_str().unwrap().to_string();
    let svc_ip = c.json(&["get", "svc", "web"])["spec"]["clusterIP"]
        .as_str()
        .unwrap()
        .to_string();

    // The files the kubelet writes.
    assert_eq!(
        ok(&c, "client", &["cat", "/etc/resolv.conf"]),
        "search default.svc.cluster.local svc.cluster.local cluster.local\n\
         nameserver 10.96.0.10\n\
         options ndots:5 timeout:2\n"
    );
    let hosts = ok(&c, "client", &["cat", "/etc/hosts"]);
    assert!(
        hosts.starts_with("# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n"),
        "{hosts}"
    );
    assert!(
        hosts.ends_with(&format!("\n{client_ip}\tclient\n")),
        "{hosts}"
    );
    let missing = c.exec("client", &["cat", "/etc/passwd"]);
    assert_eq!(missing.status.code(), Some(1));
    assert_eq!(
        text(&missing.stderr),
        "cat: /etc/passwd: No such file or directory\n"
    );

    // The environment: the kubelet's Service variables.
    let env = ok(&c, "client", &["env"]);
    let lines: Vec<&str> = env.lines().collect();
    for expected in [
        "HOSTNAME=client".to_string(),
        format!("WEB_SERVICE_HOST={svc_ip}"),
        "WEB_SERVICE_PORT=80".to_string(),
        "WEB_SERVICE_PORT_HTTP=80".to_string(),
        format!("WEB_PORT=tcp://{svc_ip}:80"),
        format!("WEB_PORT_80_TCP_ADDR={svc_ip}"),
        "KUBERNETES_SERVICE_PORT=443".to_string(),
    ] {
        assert!(lines.contains(&expected.as_str()), "{expected} in\n{env}");
    }
    assert_eq!(
        ok(&c, "client", &["printenv", "WEB_SERVICE_HOST"]),
        format!("{svc_ip}\n")
    );

    // wget through the Service, and busybox's refusal message.
    let body = ok(&c, "client", &["wget", "-qO-", "http://web/"]);
    let echo: serde_json::Value = serde_json::from_str(&body).expect("echo json");
    let web_names: Vec<&str> = web_pods
        .iter()
        .map(|p| p["metadata"]["name"].as_str().unwrap())
        .collect();
    assert!(
        web_names.contains(&echo["pod"].as_str().unwrap_or_default()),
        "{body}"
    );
    let web_ip = web_pods[0]["status"]["podIP"].as_str().unwrap();
    let refused = c.exec(
        "client",
        &["wget", "-q", "-O", "-", &format!("http://{web_ip}:8081/")],
    );
    assert_eq!(refused.status.code(), Some(1));
    assert_eq!(
        text(&refused.stderr),
        format!("wget: can't connect to remote host ({web_ip}): Connection refused\n")
    );

    // The web pod's listener, from its namespace's socket table.
    let web_name = web_pods[0]["metadata"]["name"].as_str().unwrap();
    let listing = ok(&c, web_name, &["ss", "-tln"]);
    assert!(
        listing
            .lines()
            .any(|l| l.starts_with("LISTEN ") && l.contains(" 0.0.0.0:8080 ")),
        "{listing}"
    );
    let netstat = ok(&c, web_name, &["netstat", "-tln"]);
    assert!(
        netstat.starts_with("Active Internet connections (only servers)\n")
            && netstat
                .lines()
                .any(|l| l.starts_with("tcp ") && l.contains(" 0.0.0.0:8080 ")),
        "{netstat}"
    );

    // sh -c joins toolbox commands.
    assert_eq!(ok(&c, "client", &["sh", "-c", "false || echo ok"]), "ok\n");
    let piped = c.exec("client", &["sh", "-c", "env | grep WEB"]);
    assert_eq!(piped.status.code(), Some(2));
    assert!(
        text(&piped.stderr).contains("not supported in podnet's toolbox"),
        "{}",
        text(&piped.stderr)
    );
}
